// Roles in the UI: a control a role may not use is not offered. The login answer carries the
// role's grants (the sidecar's one permission matrix); the screens read them, never the role.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

let sidecar;

before(async () => {
  const seeded = h.seed({ pipelines: false }); // tanaka (inspector), suzuki (supervisor), admin
  sidecar = await h.startSidecar({ data: seeded.data });
  await h.launchBrowser({ fixtures: seeded.fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

async function logIn(page, user) {
  await page.goto(`${sidecar.baseUrl}/`);
  await page.evaluate(() => window.localStorage.clear()); // the browser's profile is shared
  await page.reload();
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId('lang-ja').click();
  await page.getByTestId('username').fill(user);
  await page.getByTestId('password').fill(h.PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-screen').waitFor({ state: 'detached' });
}

test('only the admin is offered the connection to a server', async () => {
  for (const [user, offered] of [['tanaka', false], ['suzuki', false], ['admin', true]]) {
    const page = await h.newPage(900);
    try {
      await logIn(page, user);
      await page.getByTestId('nav-settings').click();
      await page.getByTestId('settings-screen').waitFor();
      assert.equal(await page.getByTestId('server-url').count(), offered ? 1 : 0, user);
      assert.equal(await page.getByTestId('connect').count(), offered ? 1 : 0, user);
      assert.equal(await page.getByTestId('connect-admin-only').count(), offered ? 0 : 1, user);
      if (!offered) await h.shot(page, `roles-ja-900-settings-${user}`);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  }
});

test("the supervisor may discard another's interrupted inspection but not resume it", async () => {
  const api = h.apiFor(sidecar);
  await api.login('tanaka');
  const started = await api.call('POST', '/sessions', { qr_code: h.QR_JSON });
  for (const [user, resume, discard] of [['suzuki', 0, 1], ['tanaka', 1, 1]]) {
    const page = await h.newPage(900);
    try {
      await logIn(page, user);
      const dialog = page.getByTestId('resume-dialog');
      await dialog.waitFor();
      const row = dialog.getByTestId('resume-item').filter({ hasText: 'tanaka' });
      await row.first().waitFor();
      assert.equal(await row.getByTestId('resume').count(), resume, user);
      assert.equal(await row.getByTestId('discard').count(), discard, user);
      assert.equal(await row.getByTestId('restart').count(), discard, user);
      if (user === 'suzuki') await h.shot(page, 'roles-ja-900-resume-supervisor');
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  }
  assert.ok(started.id);
});
