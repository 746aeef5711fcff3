import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, apiEnv, loadConfig, webhookEnv } from '@farm/platform';

describe('loadConfig', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'farm-env-'));
  const file = (name: string, content: string) => {
    writeFileSync(path.join(dir, name), content);
    return path.join(dir, name);
  };

  it('reads a variable from <NAME>_FILE (Docker and Kubernetes secrets), trimmed', () => {
    const config = loadConfig({ ...apiEnv, ...webhookEnv }, {
      ADMIN_API_KEY_FILE: file('admin', 'fk_admin_0123456789abcdef\n'),
      API_KEYS_FILE: file('keys', 'default:fk_0123456789abcdef\n'),
      WEBHOOK_SECRET_FILE: file('webhook', 'a-webhook-secret-of-some-length'),
    });
    expect(config.ADMIN_API_KEY).toBe('fk_admin_0123456789abcdef');
    expect(config.API_KEYS).toEqual([{ tenant: 'default', key: 'fk_0123456789abcdef' }]);
    expect(config.WEBHOOK_SECRET).toBe('a-webhook-secret-of-some-length');
  });

  it('prefers the variable itself to its file', () => {
    expect(loadConfig(apiEnv, { ADMIN_API_KEY: 'fk_from_the_environment', ADMIN_API_KEY_FILE: file('other', 'fk_from_the_file_0000') }).ADMIN_API_KEY).toBe('fk_from_the_environment');
  });

  it('names an unreadable file and a bad value read from a file, on one line', () => {
    expect(() => loadConfig(apiEnv, { ADMIN_API_KEY_FILE: path.join(dir, 'missing'), PORT_FILE: file('port', 'eighty') })).toThrow(
      new ConfigError(`invalid environment: ADMIN_API_KEY_FILE: cannot read ${path.join(dir, 'missing')} (ENOENT); PORT: Invalid input: expected number, received NaN`),
    );
  });
});
