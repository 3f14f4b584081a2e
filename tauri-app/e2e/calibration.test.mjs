// Camera calibration in the UI: a supervisor takes a calibration photo on the settings screen and
// sees the camera's new scale; an inspector is not offered it.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

let sidecar;
let seeded;

before(async () => {
  seeded = h.seed({ pipelines: false }); // tanaka (inspector), suzuki (supervisor), admin
  sidecar = await h.startSidecar({ data: seeded.data });
  await h.launchBrowser({ fixtures: seeded.fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

async function settingsAs(page, user) {
  await page.goto(`${sidecar.baseUrl}/`);
  await page.evaluate(() => window.localStorage.clear()); // the browser's profile is shared
  await page.reload();
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId('lang-ja').click();
  await page.getByTestId('username').fill(user);
  await page.getByTestId('password').fill(h.PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-screen').waitFor({ state: 'detached' });
  await page.getByTestId('nav-settings').click();
  await page.getByTestId('settings-screen').waitFor();
  await page.getByTestId('settings-sync').waitFor();
}

test('a supervisor calibrates the camera from a photo of a checkerboard', async () => {
  const page = await h.newPage(900);
  try {
    await settingsAs(page, 'suzuki');
    const current = page.getByTestId('calibration-current');
    await current.waitFor();
    assert.match(await current.textContent(), /未校正/);
    // A photo with no board on it: refused, saying what to do; nothing changes.
    await page.getByTestId('calibration-photo').setInputFiles(join(seeded.fixtures, 'photo-1.jpg'));
    assert.match(await page.getByTestId('calibration-error').textContent(), /倍率を出せません/);
    assert.match(await current.textContent(), /未校正/);
    // The board: 5 mm squares with 7 × 5 inner corners (the form's defaults), seen at 0.06 mm a pixel.
    await page.getByTestId('calibration-size').fill('5');
    await page.getByTestId('calibration-photo').setInputFiles(join(seeded.fixtures, 'checkerboard.png'));
    const taken = await page.getByTestId('calibration-taken').textContent();
    assert.match(taken, /校正しました: 1 画素 0\.0(5999|600\d) mm/);
    await page.waitForFunction(() => /0\.0(5999|600\d) mm/.test(document.querySelector('[data-testid="calibration-current"]')?.textContent ?? ''));
    assert.equal(await page.getByTestId('calibration-error').count(), 0);
    await h.shot(page, 'calibration-ja-900-taken');
    // The scale is the one measurements now use.
    const api = h.apiFor(sidecar);
    await api.login('tanaka');
    const listed = await api.call('GET', '/calibrations');
    assert.ok(Math.abs(listed.current.default - 0.06) < 0.0001, JSON.stringify(listed));
    assert.deepEqual(page.problems, []);
  } finally {
    await page.close();
  }
});

test('an inspector is not offered the calibration', async () => {
  const page = await h.newPage(900);
  try {
    await settingsAs(page, 'tanaka');
    assert.equal(await page.getByTestId('calibration').count(), 0);
    assert.deepEqual(page.problems, []);
  } finally {
    await page.close();
  }
});
