// Roles in the UI: a control a role may not use is not offered. The login answer carries the
// role's grants (the sidecar's one permission matrix); the screens read them, never the role.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
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
      // The harness's plaintext development store is a warning on the settings screen, for
      // every role.
      assert.match((await page.getByTestId('plaintext-store').textContent()) ?? '', /暗号化されていません/, user);
      if (!offered) await h.shot(page, `roles-ja-900-settings-${user}`);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  }
});

test('only a login that reads everyone\'s inspections is offered the inspector filter', async () => {
  for (const [user, offered] of [['tanaka', 0], ['suzuki', 1]]) {
    const page = await h.newPage(900);
    try {
      await logIn(page, user);
      const dialog = page.getByTestId('resume-dialog');
      if (await dialog.isVisible()) await dialog.getByTestId('resume-later').click();
      await page.getByTestId('nav-history').click();
      await page.getByTestId('history-screen').waitFor();
      await page.getByTestId('h-product').waitFor();
      assert.equal(await page.getByTestId('h-inspector').count(), offered, user);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  }
});

test('a supervisor sends a set-aside operation again; an inspector is not offered it', async () => {
  // An operation the tablet set aside (a proxy answered in the server's stead, say).
  const opId = randomUUID();
  execFileSync('sqlite3', [
    join(seeded.data, 'kensa.db'),
    "INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, created_at, set_aside_at, " +
      `set_aside_reason) VALUES ('${opId}', 'inspection_target', '${randomUUID()}', 'INSERT', '{}', 0, ` +
      "'2026-12-03 08:00:00', '2026-12-03 08:01:00', 'invalid_request: refused by a proxy')",
  ]);
  for (const [user, offered] of [['tanaka', 0], ['suzuki', 1]]) {
    const page = await h.newPage(900);
    try {
      await logIn(page, user);
      const dialog = page.getByTestId('resume-dialog');
      if (await dialog.isVisible()) await dialog.getByTestId('resume-later').click();
      await page.getByTestId('nav-settings').click();
      // Both see that one is set aside; only the supervisor is shown which, and may send it.
      await page.locator('[data-testid="settings-sync"] [data-fact="set-aside"][data-value="1"]').waitFor();
      const list = page.getByTestId('set-aside-list');
      if (offered) await list.waitFor();
      assert.equal(await page.getByTestId('send-again').count(), offered, user);
      if (offered) {
        await list.getByTestId('send-again').click();
        assert.match((await page.getByTestId('send-again-result').textContent()) ?? '', /送信待ちに戻しました/);
        await list.waitFor({ state: 'detached' });
        await h.shot(page, 'roles-ja-900-sent-again');
      }
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  }
  const audited = execFileSync('sqlite3', [
    join(seeded.data, 'kensa.db'),
    `SELECT action || ' ' || username FROM audit_log WHERE entity = 'sync_operation' AND entity_id = '${opId}'`,
  ]).toString().trim();
  assert.equal(audited, 'release suzuki');
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
      const row = dialog.locator('[data-testid="resume-item"][data-owner="tanaka"]');
      await row.first().waitFor();
      assert.equal(await row.getByTestId('resume').count(), resume, user);
      assert.equal(await row.getByTestId('discard').count(), discard, user);
      assert.equal(await row.getByTestId('restart').count(), discard, user);
      if (user === 'suzuki') await h.shot(page, 'roles-ja-900-resume-supervisor');
      if (user === 'tanaka') {
        // Put off, it is not lost: the scan screen says it is waiting and opens it again.
        await dialog.getByTestId('resume-later').click();
        await dialog.waitFor({ state: 'detached' });
        const notice = page.getByTestId('interrupted-notice');
        assert.match((await notice.textContent()) ?? '', /中断された検査が 1 件あります/);
        await h.shot(page, 'roles-ja-900-interrupted-waiting');
        await notice.getByTestId('interrupted-show').click();
        await dialog.waitFor();
        await dialog.locator('[data-testid="resume-item"][data-owner="tanaka"]').getByTestId('resume').click();
        await page.locator('[data-testid="item-panel"]').first().waitFor();
      }
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  }
  assert.ok(started.id);
});

test('scanning a unit whose inspection was left open offers that one before a second', async () => {
  const api = h.apiFor(sidecar);
  await api.login('tanaka');
  const waiting = await api.call('GET', '/sessions/interrupted');
  assert.ok(waiting.length >= 1, 'the test before left one open');
  const page = await h.newPage(900);
  try {
    await logIn(page, 'tanaka');
    const dialog = page.getByTestId('resume-dialog');
    await dialog.waitFor();
    await dialog.getByTestId('resume-later').click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByTestId('wedge').fill(h.QR_JSON);
    await page.keyboard.press('Enter');
    const open = page.getByTestId('target-open');
    await open.waitFor();
    assert.match((await open.textContent()) ?? '', /この製品には中断された検査があります.*担当: あなた/);
    await h.shot(page, 'roles-ja-900-target-open-already');
    await open.getByTestId('target-resume').click();
    await page.locator('[data-testid="item-panel"]').first().waitFor();
    const after = await api.call('GET', '/sessions/interrupted');
    assert.deepEqual(after.map((r) => r.id).sort(), waiting.map((r) => r.id).sort(), 'no second inspection');
    assert.deepEqual(page.problems, []);
  } finally {
    await page.close();
  }
});

test('a supervisor re-judges a completed inspection, signs the release, and the result follows', async () => {
  const api = h.apiFor(sidecar);
  // The inspection the test before left open would be offered to the supervisor in the resume
  // dialog, at a moment of its own after the login, and the page behind the dialog takes no
  // taps: it goes first.
  await api.login('suzuki');
  for (const open of await api.call('GET', '/sessions/interrupted')) {
    await api.call('POST', `/sessions/${open.id}/discard`, { signature: { password: h.PASSWORD, meaning: 'discarded' } });
  }
  await api.login('tanaka');
  const started = await api.call('POST', '/sessions', { qr_code: h.QR_JSON });
  for (const item of started.items) {
    await api.call('POST', `/sessions/${started.id}/items/${item.item_id}/verification`, {
      final_result: 'OK',
      verification_time: 1,
    });
  }
  await api.call('POST', `/sessions/${started.id}/complete`);

  const summaryAs = async (page, user) => {
    await logIn(page, user);
    await page.evaluate((id) => (window.location.hash = `#/history/${id}`), started.id);
    await page.getByTestId('summary-screen').waitFor();
    await page.locator('tr[data-code="F-PISTON"]').waitFor();
    return page.locator('tr[data-code="F-PISTON"]');
  };

  for (const user of ['tanaka', 'admin']) {
    const page = await h.newPage(1280);
    try {
      const row = await summaryAs(page, user);
      assert.equal(await row.getByTestId('rejudge').count(), 0, user);
    } finally {
      await page.close();
    }
  }

  const page = await h.newPage(1280);
  try {
    const row = await summaryAs(page, 'suzuki');
    await row.getByTestId('rejudge').click();
    await row.getByTestId('rejudge-NG').click();
    // Only the defect types the item offers: the sidecar refuses any other.
    const offered = await row.locator('[data-testid^="rejudge-defect-"]').evaluateAll((els) =>
      els.map((e) => e.getAttribute('data-testid').replace('rejudge-defect-', '')),
    );
    assert.deepEqual(offered, ['piston_stuck', 'other']);
    await row.getByTestId('rejudge-defect-piston_stuck').click();
    await row.getByTestId('rejudge-severity-minor').click();
    await row.getByTestId('rejudge-save').click();
    await page.locator('[data-testid="summary-result"].result--NG').waitFor();
    // Releasing it as OK again is signed: the dialog names the meaning.
    await row.getByTestId('rejudge').click();
    await row.getByTestId('rejudge-OK').click();
    await row.getByTestId('rejudge-save').click();
    await page.getByTestId('signature-dialog').waitFor();
    await h.shot(page, 'roles-ja-1280-rejudge-signature');
    await page.getByTestId('signature-password').fill(h.PASSWORD);
    await page.getByTestId('signature-sign').click();
    await page.locator('[data-testid="summary-result"].result--OK').waitFor();
    await h.shot(page, 'roles-ja-1280-rejudged');
    assert.deepEqual(page.problems, []);
  } finally {
    await page.close();
  }
});
