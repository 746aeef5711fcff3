/**
 * The palette page end to end in headless Chromium (Debian's, driven by playwright-core) against
 * the real farm: enter the key, start a session, paint a stroke with the mouse and see the image
 * change inside the stroke's area and nowhere else, commit, and download the committed frame.
 * Skipped (global setup says so in one line) where /usr/bin/chromium is not installed.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Browser, Page, chromium } from 'playwright-core';
import { TestApi, download, useFarm, waitForJob } from '../support/harness';
import { decodeRgb } from '../support/colour-judge';
import { CHROMIUM } from '../support/browser';

let api: TestApi;
let browser: Browser;
let page: Page;

const SCREENSHOTS = process.env.PALETTE_SCREENSHOTS;

(existsSync(CHROMIUM) ? describe : describe.skip)('the palette page in Chromium', () => {
  useFarm(async (f, a) => {
    api = a;
    await f.startWorker();
  });

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
    page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 700 } });
  });
  afterAll(() => browser?.close());

  /** The live image's RGB bytes, read from its canvas. */
  const imagePixels = async () =>
    Buffer.from(
      await page.evaluate<number[]>(`(() => {
        const canvas = document.getElementById('image');
        const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        return Array.from(data).filter((_, i) => i % 4 !== 3);
      })()`),
    );

  it('paints a stroke that changes the image inside its area only, then commits and downloads the frame', async () => {
    await page.goto(`${api.base}/`);
    await page.fill('#key', api.key!);
    await page.click('#key-form button');
    await page.fill('#seed', '7');
    await page.click('#start');
    await page.waitForFunction(`Number(document.getElementById('status').dataset.frames) >= 1`);
    const before = await imagePixels();

    // A stroke with the red brush (24 px at 256 px), across the upper left quarter: the canvas is
    // shown at 512 css px for 256 image px.
    const box = (await page.locator('#paint').boundingBox())!;
    const scale = box.width / 256;
    const from = { x: 60, y: 70 };
    const to = { x: 110, y: 90 };
    await page.mouse.move(box.x + from.x * scale, box.y + from.y * scale);
    await page.mouse.down();
    await page.mouse.move(box.x + to.x * scale, box.y + to.y * scale, { steps: 8 });
    await page.mouse.up();
    // The frame for the stroke's last update has been drawn.
    await page.waitForFunction(`(() => {
      const s = document.getElementById('status').dataset;
      return s.seq !== undefined && Number(s.basedOn) >= Number(s.seq);
    })()`);
    const after = await imagePixels();
    if (SCREENSHOTS) await page.screenshot({ path: path.join(SCREENSHOTS, 'palette-stroke.png') });

    // Changed pixels lie within the stroke (its end points ± half the brush) plus the 8 px feather.
    const reach = 12 + 8 + 1;
    let inside = 0;
    let outside = 0;
    for (let i = 0; i < before.length; i += 3) {
      if (before[i] === after[i] && before[i + 1] === after[i + 1] && before[i + 2] === after[i + 2]) continue;
      const x = (i / 3) % 256;
      const y = Math.floor(i / 3 / 256);
      if (x >= from.x - reach && x <= to.x + reach && y >= from.y - reach && y <= to.y + reach) inside++;
      else outside++;
    }
    expect(inside).toBeGreaterThan(500);
    expect(outside).toBe(0);

    // Commit: the page downloads the frame, which is the committed job's image.
    const [saved] = await Promise.all([page.waitForEvent('download'), page.click('#commit')]);
    const file = path.join(os.tmpdir(), `palette-${Date.now()}.png`);
    await saved.saveAs(file);
    const jobId = await page.getAttribute('#status', 'data-committed');
    const job = await waitForJob(api, jobId!);
    expect(job.status).toBe('succeeded');
    const [downloaded, stored] = await Promise.all([decodeRgb(readFileSync(file)), decodeRgb(await download(job.result.url))]);
    expect(downloaded.data.equals(stored.data)).toBe(true);
    expect(stored.data.equals(after)).toBe(true);
    if (SCREENSHOTS) await page.screenshot({ path: path.join(SCREENSHOTS, 'palette-committed.png') });
  });
});
