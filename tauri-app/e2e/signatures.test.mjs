// Electronic signatures in a real browser against a real sidecar, in Japanese and in English:
// the supervisor (suzuki, 鈴木) overrides the AI's verdict and completes an inspection with an NG
// item; each asks for the password again (a wrong one is refused and said so), and the history
// shows both signatures and the inspection's audit trail. An inspector (tanaka) sees neither
// that inspection in the history nor its detail by its address.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as h from './harness.mjs';

const TEXT = {
  ja: {
    overridden: '上書き承認',
    approved: '承認',
    supervisor: '監督者',
    wrong: 'パスワードが違います',
    signature: '署名:',
    audit: '監査証跡',
  },
  en: {
    overridden: 'override approved',
    approved: 'approved',
    supervisor: 'Supervisor',
    wrong: 'Wrong password',
    signature: 'Signature:',
    audit: 'Audit trail',
  },
};

let sidecar;
let api;
let data;

before(async () => {
  const seeded = h.seed();
  data = seeded.data;
  sidecar = await h.startSidecar({ data });
  api = h.apiFor(sidecar);
  await api.login('suzuki');
  await h.launchBrowser({ fixtures: seeded.fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

/** The AI's verdict on an item, as the job runner leaves one in the tablet's database. */
function aiSays(sessionId, itemId, result) {
  const script = [
    'import sqlite3, sys, uuid',
    'db, sid, item, result = sys.argv[1:]',
    'conn = sqlite3.connect(db, timeout=30)',
    'with conn:',
    '    conn.execute("INSERT INTO ai_inspection_results (id, session_id, item_id, overall_result,'
      + ' confidence, processing_time) VALUES (?, ?, ?, ?, 0.91, 0.04)", (str(uuid.uuid4()), sid, item, result))',
    '    conn.execute("UPDATE inspection_session_items SET status = \'ai_completed\''
      + ' WHERE session_id = ? AND item_id = ?", (sid, item))',
    'conn.close()',
  ].join('\n');
  execFileSync(h.PYTHON, ['-c', script, join(data, 'kensa.db'), sessionId, itemId, result], { stdio: 'inherit' });
}

/** An inspection of the supervisor's own with every item but V-SCRATCH judged OK. */
async function prepared(batch) {
  const qr = JSON.stringify({ product_id: 'BRK-100', batch_id: batch });
  const started = await api.call('POST', '/sessions', { qr_code: qr });
  const items = Object.fromEntries(started.items.map((i) => [i.item_code, i.item_id]));
  for (const [code, itemId] of Object.entries(items)) {
    if (code === 'V-SCRATCH') continue;
    await api.call('POST', `/sessions/${started.id}/items/${itemId}/verification`, { final_result: 'OK', verification_time: 1 });
  }
  aiSays(started.id, items['V-SCRATCH'], 'OK');
  return { id: started.id, scratch: items['V-SCRATCH'] };
}

async function login(page, lang, username) {
  await page.goto(`${sidecar.baseUrl}/`);
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId(`lang-${lang}`).click();
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(h.PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('wedge').waitFor();
}

async function sign(page, lang, meaning, name) {
  const T = TEXT[lang];
  const dialog = page.getByTestId('signature-dialog');
  await dialog.waitFor();
  assert.equal(await dialog.getAttribute('data-meaning'), meaning);
  assert.equal(await dialog.getByTestId('signature-meaning').textContent(), T[meaning]);
  assert.equal(await dialog.getByTestId('signature-signer').textContent(), `鈴木 (${T.supervisor})`);
  // A wrong password first: refused, said so, nothing signed, the dialog stays.
  await dialog.getByTestId('signature-password').fill('not-my-password');
  await dialog.getByTestId('signature-sign').click();
  const error = dialog.getByTestId('signature-error');
  await error.waitFor();
  assert.match(await error.textContent(), new RegExp(T.wrong));
  await h.shot(page, `${name}-wrong`);
  assert.deepEqual(await h.smallTargets(page), [], 'controls under 48 px in the signature dialog');
  await dialog.getByTestId('signature-password').fill(h.PASSWORD);
  await dialog.getByTestId('signature-sign').click();
  await dialog.waitFor({ state: 'detached' });
}

for (const lang of ['ja', 'en']) {
  describe(`signatures in ${lang}`, () => {
    test(`${lang}: the supervisor overrides with a signature and the history shows it`, async () => {
      const T = TEXT[lang];
      const batch = `SIG-${lang}`;
      const insp = await prepared(batch);
      const page = await h.newPage(900);
      try {
        await login(page, lang, 'suzuki');
        // The tablet offers the inspection left open: the supervisor carries on with it.
        await page.getByTestId('resume-dialog').waitFor();
        await page.getByTestId('resume-item').filter({ hasText: batch }).getByTestId('resume').click();
        const panel = page.locator('[data-testid="item-panel"][data-code="V-SCRATCH"]');
        await panel.waitFor();
        // The AI said OK; the supervisor judges NG.
        await panel.getByTestId('verdict-NG').click();
        await panel.locator('[data-testid^="defect-"]').first().click();
        await panel.locator('[data-testid^="severity-"]').first().click();
        await panel.getByTestId('submit-verdict').click();
        await sign(page, lang, 'overridden', `sig-${lang}-01-override`);
        await page.locator('[data-testid="item-row"][data-code="V-SCRATCH"][data-status="verified"]').waitFor();
        // Complete: the result is NG, so the supervisor approves it with a signature.
        await page.getByTestId('complete').click();
        await sign(page, lang, 'approved', `sig-${lang}-02-complete`);
        await page.getByTestId('summary-screen').waitFor();

        // The history's detail shows both signatures, and the audit trail with them.
        await page.getByTestId('to-history').click();
        await page.getByTestId('history-screen').waitFor();
        await page.getByTestId('h-batch').fill(batch);
        await page.getByTestId('h-search').click();
        const row = page.locator(`[data-testid="h-row"][data-batch="${batch}"]`);
        await row.waitFor();
        await row.getByTestId('h-open').click();
        await page.getByTestId('summary-screen').waitFor();
        const lines = page.getByTestId('signature-line');
        await lines.first().waitFor();
        const texts = await lines.allTextContents();
        assert.equal(texts.length, 2, texts.join(' | '));
        const pattern = (meaning) =>
          new RegExp(`^${T.signature} 鈴木 \\(${T.supervisor}\\) \\S+ \\d{2}:\\d{2} — ${T[meaning]}$`);
        assert.match(texts[0], pattern('overridden'));
        assert.match(texts[1], pattern('approved'));
        const trail = page.getByTestId('audit-trail');
        await trail.getByRole('heading', { name: T.audit }).waitFor();
        await h.shot(page, `sig-${lang}-03-history`);
        assert.deepEqual(await h.smallTargets(page), [], 'controls under 48 px in the history detail');
      } finally {
        await page.close();
      }
    });
  });
}

test('an inspector sees neither another inspector’s inspection nor its detail', async () => {
  const batch = 'SIG-OTHERS';
  const insp = await prepared(batch);
  const page = await h.newPage(900);
  try {
    await login(page, 'en', 'tanaka');
    await page.getByTestId('nav-history').click();
    await page.getByTestId('history-screen').waitFor();
    await page.getByTestId('h-batch').fill(batch);
    await page.getByTestId('h-search').click();
    await page.getByTestId('h-total').filter({ hasText: /\b0\b/ }).waitFor();
    assert.equal(await page.locator(`[data-testid="h-row"][data-batch="${batch}"]`).count(), 0);
    // Its address answers as a missing one: no product, no batch, no items.
    await page.goto(`${sidecar.baseUrl}/#/history/${insp.id}`);
    await page.getByTestId('summary-screen').waitFor();
    await page.getByTestId('error').waitFor();
    assert.equal(await page.getByTestId('summary-batch').count(), 0);
    await h.shot(page, 'sig-en-04-not-yours');
  } finally {
    await page.close();
  }
});
