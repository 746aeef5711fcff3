/** Where the browser tests find Chromium (Debian's package; `.ci/run` installs it). */
export const CHROMIUM = '/usr/bin/chromium';
