// Every screen and dialog an inspector meets passes axe-core with no serious or critical
// violation: the phone (390x844), the tablet upright with touch (800x1280), on its side
// (1280x800) and a desk's 1280-wide window, each in Japanese and in English. axe-core comes from
// node_modules (a dev dependency) and is injected into the page; nothing is fetched at run time.
//
// The inspections the screens show are made through the API beforehand (a completed one for the
// summary and the history, an open one with a photo and the AI's result for the item screen and
// the dialogs), so each run only looks and never changes them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const VIEWPORTS = [
  { name: 'phone', width: 390, height: 844, touch: true },
  { name: 'tablet', width: 800, height: 1280, touch: true },
  { name: 'landscape', width: 1280, height: 800, touch: true },
  { name: 'desk', width: 1280, height: 1024, touch: false },
];
const LANGS = ['ja', 'en'];
const BATCH = 'AX-1001';

let sidecar;
let api;
let fixtures;
let completed;
let open;
let openItem;

async function upload(sessionId, itemId, file) {
  const form = new FormData();
  form.append('file', new Blob([readFileSync(join(fixtures, file))], { type: 'image/jpeg' }), file);
  const login = await api.login('tanaka');
  const res = await fetch(`${sidecar.baseUrl}/sessions/${sessionId}/items/${itemId}/images`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${sidecar.token}`, 'X-Kensa-Session': login.token },
    body: form,
  });
  assert.equal(res.status, 201, await res.text());
}

async function judged(sessionId, itemId) {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const item = (await api.call('GET', `/sessions/${sessionId}`)).items.find((i) => i.item_id === itemId);
    if (item.status === 'ai_completed') return item.ai_results.at(-1);
    assert.notEqual(item.status, 'failed', JSON.stringify(item));
    if (Date.now() > deadline) throw new Error(`not judged: ${item.status}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

before(async () => {
  const seeded = h.seed();
  fixtures = seeded.fixtures;
  sidecar = await h.startSidecar({ data: seeded.data, aiWorkers: 1 });
  api = h.apiFor(sidecar);
  await api.login('tanaka');
  // A completed inspection: the summary, the history and its detail with the audit trail.
  const done = await api.call('POST', '/sessions', { qr_code: JSON.stringify({ product_id: 'BRK-100', batch_id: BATCH, serial: 'SN-1' }) });
  for (const item of done.items) {
    await api.call('POST', `/sessions/${done.id}/items/${item.item_id}/verification`, { final_result: 'OK', verification_time: 1 });
  }
  await api.call('POST', `/sessions/${done.id}/complete`);
  completed = done.id;
  // An open one with a photo the AI has judged: the item screen, the resume and signature dialogs.
  const started = await api.call('POST', '/sessions', { qr_code: JSON.stringify({ product_id: 'BRK-100', batch_id: BATCH, serial: 'SN-2' }) });
  open = started.id;
  openItem = started.items.find((i) => i.item_code === 'V-SCRATCH').item_id;
  await upload(open, openItem, 'photo-1.jpg');
  await api.login('tanaka');
  await api.call('POST', `/sessions/${open}/items/${openItem}/analyse`, {});
  await judged(open, openItem);
  await h.launchBrowser({ fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

/** axe-core's serious and critical violations on the page as it is now, one line each. */
async function axe(page, where, found) {
  // Settled: no transition half-way through a colour (contrast is read from what is drawn).
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== 'running'), null, { timeout: 5000 }).catch(() => undefined);
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const { passed, violations } = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return {
      passed: result.passes.length,
      violations: result.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 4).map((n) => n.target.join(' ')).join(', ')}${v.nodes.length > 4 ? ` … ${v.nodes.length} in all` : ''}`),
    };
  });
  // The rules ran over the screen (an empty or blank page passes next to nothing).
  assert.ok(passed >= 10, `${where}: axe passed only ${passed} rules`);
  page.screens.push(where);
  for (const line of violations) found.push(`${where}: ${line}`);
}

async function go(page, hash) {
  await page.evaluate((to) => {
    window.location.hash = to;
  }, hash);
}

test('the check finds what it is there to find: an unnamed field, a nameless button, faint text', async () => {
  const page = await h.newPage(800);
  page.screens = [];
  const found = [];
  try {
    await page.goto(`${sidecar.baseUrl}/`);
    await page.getByTestId('login-screen').waitFor();
    await page.evaluate(() => {
      const form = document.querySelector('[data-testid="login-screen"]');
      form.insertAdjacentHTML(
        'beforeend',
        '<input type="text" data-probe="1"><button type="button" data-probe="2"></button>' +
          '<p data-probe="3" style="color:#ccc;background:#fff">faint</p>',
      );
    });
    await axe(page, 'login with planted faults', found);
    for (const rule of ['label', 'button-name', 'color-contrast']) {
      assert.ok(found.some((line) => line.includes(`: ${rule} (`)), `${rule} is reported: ${found.join('; ')}`);
    }
  } finally {
    await page.close();
  }
});

for (const vp of VIEWPORTS) {
  for (const lang of LANGS) {
    test(`${lang} at ${vp.width}x${vp.height}${vp.touch ? ' (touch)' : ''}: no serious or critical axe violation on any screen or dialog`, async () => {
      const page = await h.newPage(vp.width);
      await page.setViewportSize({ width: vp.width, height: vp.height });
      if (vp.touch) {
        const cdp = await page.context().newCDPSession(page);
        await cdp.send('Emulation.setTouchEmulationEnabled', { enabled: true, maxTouchPoints: 5 });
      }
      page.screens = [];
      const found = [];
      const tag = `a11y-${lang}-${vp.width}x${vp.height}`;
      try {
        await page.goto(`${sidecar.baseUrl}/`);
        await page.getByTestId('login-screen').waitFor();
        await page.getByTestId(`lang-${lang}`).click();
        assert.equal(await page.evaluate(() => document.documentElement.lang), lang);
        await axe(page, 'login', found);
        // A wrong password: the error as it is announced.
        await page.getByTestId('username').fill('tanaka');
        await page.getByTestId('password').fill('not-the-password');
        await page.getByTestId('login-submit').click();
        await page.getByRole('alert').first().waitFor();
        await axe(page, 'login with an error', found);
        await page.getByTestId('password').fill(h.PASSWORD);
        await page.getByTestId('login-submit').click();

        const resume = page.getByTestId('resume-dialog');
        await resume.waitFor();
        await axe(page, 'resume dialog', found);
        await resume.locator(`[data-testid="resume-item"]`).first().getByTestId('discard').click();
        await page.getByTestId('discard-confirm').waitFor();
        await axe(page, 'discard confirmation', found);
        await page.getByTestId('discard-keep').click();
        await page.getByTestId('resume-later').click();
        await resume.waitFor({ state: 'detached' });

        await page.getByTestId('wedge').waitFor();
        await axe(page, 'scan', found);
        await page.getByTestId('wedge').fill(JSON.stringify({ product_id: 'XYZ-999', batch_id: BATCH, serial: 'SN-0' }));
        await page.getByTestId('wedge').press('Enter');
        await page.getByRole('alert').first().waitFor();
        await axe(page, 'scan of an unknown product', found);
        await page.getByTestId('wedge').fill(JSON.stringify({ product_id: 'BRK-100', batch_id: BATCH, serial: `SN-${tag}` }));
        await page.getByTestId('wedge').press('Enter');
        await page.getByTestId('target-screen').waitFor();
        await axe(page, 'target', found);

        await go(page, `#/session/${open}/item/${openItem}`);
        const panel = page.locator(`[data-testid="item-panel"][data-code="V-SCRATCH"]`);
        await panel.getByTestId('ai-result').waitFor();
        await panel.locator('img.photo__img').waitFor();
        await axe(page, 'item with its photo and AI result', found);
        // The verdict against the AI's: the signature dialog (cancelled, nothing written).
        const ai = await panel.getByTestId('ai-result').getAttribute('class');
        if (ai?.includes('result--NG')) {
          await panel.getByTestId('verdict-OK').click();
        } else {
          await panel.getByTestId('verdict-NG').click();
          await panel.locator('[data-testid^="defect-"]').first().click();
          await panel.getByTestId('severity-major').click();
        }
        await axe(page, 'item with a verdict chosen', found);
        await panel.getByTestId('submit-verdict').click();
        const signature = page.getByTestId('signature-dialog');
        await signature.waitFor();
        await axe(page, 'signature dialog', found);
        await page.getByTestId('signature-cancel').click();
        await signature.waitFor({ state: 'detached' });
        // The camera, opened for another photo (Chromium's fake capture device), then closed.
        await panel.getByTestId('take-photo').click();
        const camera = panel.getByTestId('camera');
        await camera.locator('video').waitFor();
        await page.waitForFunction(() => (document.querySelector('[data-testid="camera"] video')?.readyState ?? 0) >= 2);
        await axe(page, 'item camera', found);
        await camera.locator('.actions .btn:not(.btn--primary)').click();
        await camera.waitFor({ state: 'detached' });
        await go(page, `#/session/${open}`);
        await page.getByTestId('session-items').waitFor();
        await axe(page, 'inspection overview', found);
        // Cancelling the inspection asks first; the question is checked and answered no.
        await page.getByTestId('cancel').click();
        await page.getByTestId('cancel-yes').waitFor();
        await axe(page, 'cancel confirmation', found);
        await page.locator('.confirm .btn:not(.btn--danger)').click();
        await page.getByTestId('cancel').waitFor();

        await go(page, `#/session/${completed}/summary`);
        await page.getByTestId('summary-result').waitFor();
        await axe(page, 'summary', found);

        await page.getByTestId('nav-history').click();
        await page.getByTestId('history-screen').waitFor();
        await page.getByTestId('h-row').first().waitFor();
        await axe(page, 'history', found);
        await page.locator(`[data-testid="h-row"]:has([data-testid="h-open"])`).first().getByTestId('h-open').click();
        await page.getByTestId('summary-result').waitFor();
        await page.getByTestId('audit-entry').first().waitFor().catch(() => undefined);
        await axe(page, 'history detail', found);

        await page.getByTestId('nav-dashboard').click();
        await page.getByTestId('chart').waitFor();
        await axe(page, 'dashboard', found);

        await page.getByTestId('nav-settings').click();
        await page.getByTestId('settings-screen').waitFor();
        await page.getByTestId('settings-sync').waitFor();
        await axe(page, 'settings', found);

        // The supervisor: the resume dialog labels a colleague's work, and a completed item can be
        // re-judged.
        await page.getByTestId('logout').click();
        await page.getByTestId('login-screen').waitFor();
        await page.getByTestId('username').fill('suzuki');
        await page.getByTestId('password').fill(h.PASSWORD);
        await page.getByTestId('login-submit').click();
        await resume.waitFor();
        await resume.locator('.resume__owner--other').first().waitFor();
        await axe(page, "resume dialog with a colleague's inspection", found);
        await page.getByTestId('resume-later').click();
        await resume.waitFor({ state: 'detached' });
        await go(page, `#/history/${completed}`);
        await page.getByTestId('summary-result').waitFor();
        await page.getByTestId('rejudge').first().click();
        await page.getByTestId('rejudge-form').waitFor();
        await axe(page, 're-judgment', found);

        console.log(`# ${tag}: ${page.screens.length} screens checked, ${found.length} serious/critical`);
        assert.equal(page.screens.length, 20, `every screen was checked: ${page.screens.join(', ')}`);
        assert.deepEqual(found, [], `serious or critical accessibility violations:\n  ${found.join('\n  ')}`);
        assert.deepEqual(page.problems, [], 'no page errors');
      } catch (err) {
        await h.shot(page, `${tag}-FAILED`).catch(() => undefined);
        throw err;
      } finally {
        await page.close();
      }
    });
  }
}
