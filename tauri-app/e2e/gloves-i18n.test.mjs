// The Japanese screens speak Japanese: a whole inspection in a real browser against a real
// sidecar (the demo AI pipelines judging every AI item), and on every screen — and in every text
// that appears for a moment, such as a job's progress — no run of Latin letters outside the
// allow-list: codes and product or lot numbers (upper case: BRK-100, V-SCRATCH, LOT A12-3456,
// AI, QR), units (mm), URLs, the product's name and the Enter key. Developer words
// ("completed"), measurement names (bore_found), English reasons ("fails"), patterns and
// pipeline ids are what it catches. In English the same AI reasons and measurements are English,
// and so are the product's and the items' names (the masters carry both).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

const WIDTH = 800;
// The phone, the tablet upright and the tablet on its side: words can change with the width.
const WIDTHS = [390, 800, 1280];
const BATCH = 'A12-3456';

let sidecar;
let api;
let fixtures;

before(async () => {
  const seeded = h.seed();
  fixtures = seeded.fixtures;
  // A stamped marking naming the batch, for the OCR item (the seed's photos carry no text).
  execFileSync(
    h.PYTHON,
    [
      '-c',
      'import sys; from pathlib import Path; from scripts.devkit import synthetic as s; ' +
        'Path(sys.argv[1]).write_bytes(s.encode(s.make_marking("LOT " + sys.argv[2], 5), ".jpg"))',
      join(fixtures, 'marking.jpg'),
      BATCH,
    ],
    { cwd: h.REPO, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  sidecar = await h.startSidecar({ data: seeded.data, aiWorkers: 1 });
  api = h.apiFor(sidecar);
  await api.login('admin');
  await h.launchBrowser({ fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

// Every text shown, as it is shown: the page records each text node and attribute a reader or
// screen reader meets, from the first paint on, so words that show for a moment count too.
function recordTexts(lang = 'ja') {
  const seen = new Set();
  window.__kensaTexts = seen;
  // Not shown in the page's language: what a browser without scripts shows, and text marked as
  // another language (the server's own words, the language switch).
  const skip = (el) => !el || el.closest(`script, style, noscript, [lang]:not([lang="${lang}"])`);
  const note = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      if (!skip(node.parentElement) && node.textContent.trim()) seen.add(node.textContent.trim());
      return;
    }
    if (node.nodeType !== Node.ELEMENT_NODE || skip(node)) return;
    for (const attr of ['aria-label', 'title', 'placeholder', 'alt', 'aria-valuetext']) {
      const value = node.getAttribute(attr);
      if (value && value.trim()) seen.add(value.trim());
    }
    for (const child of node.childNodes) note(child);
  };
  const start = () => {
    note(document.body);
    new MutationObserver((changes) => {
      for (const change of changes) {
        if (change.type === 'characterData') note(change.target);
        else if (change.type === 'attributes') note(change.target);
        else for (const added of change.addedNodes) note(added);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  };
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
}

const ALLOWED = [
  /^[A-Z][A-Z0-9_-]*$/, // codes, product and lot numbers, AI, QR
  /^https?:\/\//, // the server's and the service's addresses
  /^(mm|kensa|Enter)$/, // a unit, the product's name, the key a scanner presses
];

/** The Latin runs in `texts` that the allow-list does not cover, each with the text it is in. */
function strays(texts) {
  const bad = new Map();
  for (const shown of texts) {
    // A command an administrator types is a code too.
    const text = shown.replace(/kensa db encrypt/g, '');
    for (const run of text.match(/[A-Za-z][A-Za-z0-9_./:-]*/g) ?? []) {
      const token = run.replace(/[.:/-]+$/, '');
      if (!ALLOWED.some((re) => re.test(token))) bad.set(token, shown.slice(0, 120));
    }
  }
  return [...bad].map(([token, where]) => `${token}  (in "${where}")`);
}

async function screenTexts(page) {
  return page.evaluate(() => [...window.__kensaTexts]);
}

/** What the screen (and every text since the previous one) showed that the allow-list does not
 * cover, each named once (per page), on the screen it first showed on. */
async function checkScreen(page, where, found) {
  page.reported ??= new Set();
  const reported = page.reported;
  const bad = strays(await screenTexts(page)).filter((line) => !reported.has(line.split(' ')[0]));
  for (const line of bad) reported.add(line.split(' ')[0]);
  if (bad.length) found.push(`${where}:\n    ${bad.join('\n    ')}`);
}

async function currentItem(page, code) {
  const panel = page.locator(`[data-testid="item-panel"][data-code="${code}"]`);
  await panel.waitFor();
  return panel;
}

async function signIfAsked(page, next) {
  const dialog = page.getByTestId('signature-dialog');
  await Promise.race([dialog.waitFor().catch(() => undefined), next.waitFor().catch(() => undefined)]);
  if ((await dialog.count()) === 0) return;
  await dialog.getByTestId('signature-password').fill(h.PASSWORD);
  await dialog.getByTestId('signature-sign').click();
  await dialog.waitFor({ state: 'detached' });
}

/** A photo, then the AI's result (started by the photo where the item says so, else by a tap). */
async function photoAndAi(page, panel, file) {
  await panel.getByTestId('photo-file').setInputFiles(join(fixtures, file));
  await panel.locator('img.photo__img').waitFor();
  const result = panel.getByTestId('ai-result');
  const started = await Promise.race([
    result.waitFor({ timeout: 4000 }).then(() => true, () => false),
    panel.getByTestId('ai-progress').waitFor({ timeout: 4000 }).then(() => true, () => false),
  ]);
  if (!started) await panel.getByTestId('analyse').click();
  await result.waitFor({ timeout: 60_000 });
  await panel.getByTestId('ai-reason').waitFor();
}

async function judge(page, panel, next) {
  const result = await panel.getByTestId('ai-result').getAttribute('class');
  if (result?.includes('result--NG')) {
    await panel.getByTestId('verdict-NG').click();
    const defect = panel.locator('[data-testid^="defect-"]').first();
    await defect.click();
    await panel.getByTestId('severity-major').click();
  } else {
    await panel.getByTestId('verdict-OK').click();
  }
  await panel.getByTestId('submit-verdict').click();
  await signIfAsked(page, next);
}

for (const width of WIDTHS) test(`ja at ${width} px: no developer English or raw data on any screen`, async () => {
  for (const open of await api.call('GET', '/sessions/interrupted')) {
    await api.call('POST', `/sessions/${open.id}/discard`, { signature: { password: h.PASSWORD, meaning: 'discarded' } });
  }
  const page = await h.newPage(width);
  const QR = JSON.stringify({ product_id: 'BRK-100', batch_id: BATCH, serial: `SN-${width}` });
  await page.addInitScript(recordTexts);
  const found = [];
  const reasons = {};
  try {
    await page.goto(`${sidecar.baseUrl}/`);
    await page.getByTestId('login-screen').waitFor();
    await page.getByTestId('lang-ja').click();
    await checkScreen(page, 'login', found);
    await page.getByTestId('username').fill('tanaka');
    await page.getByTestId('password').fill(h.PASSWORD);
    await page.getByTestId('login-submit').click();

    await page.getByTestId('wedge').waitFor();
    await checkScreen(page, 'scan', found);
    // A label of a product the tablet does not know: the message says so in Japanese.
    await page.getByTestId('wedge').fill(JSON.stringify({ product_id: 'XYZ-999', batch_id: BATCH, serial: 'SN-0001' }));
    await page.getByTestId('wedge').press('Enter');
    await page.getByRole('alert').first().waitFor();
    await checkScreen(page, 'scan of an unknown product', found);
    await page.getByTestId('wedge').fill(QR);
    await page.getByTestId('wedge').press('Enter');
    await page.getByTestId('target-screen').waitFor();
    await checkScreen(page, 'target', found);
    await page.getByTestId('start').click();

    const items = [
      ['V-SCRATCH', 'photo-1.jpg', 'V-FOREIGN'],
      ['V-FOREIGN', 'photo-2.jpg', 'T-MARKING'],
      ['T-MARKING', 'marking.jpg', 'D-BORE'],
      ['D-BORE', 'bore.jpg', 'F-PISTON'],
    ];
    for (const [code, file, next] of items) {
      const panel = await currentItem(page, code);
      await photoAndAi(page, panel, file);
      reasons[code] = await panel.getByTestId('ai-reason').textContent();
      await h.shot(page, `i18n-ja-${width}-${code}`);
      await checkScreen(page, `item ${code} with its AI result`, found);
      await judge(page, panel, page.locator(`[data-testid="item-panel"][data-code="${next}"]`));
    }
    const piston = await currentItem(page, 'F-PISTON');
    await checkScreen(page, 'item F-PISTON', found);
    await piston.getByTestId('verdict-OK').click();
    await piston.getByTestId('submit-verdict').click();

    const complete = page.getByTestId('complete');
    await complete.waitFor();
    await page.waitForFunction(() => !document.querySelector('[data-testid="complete"]')?.disabled);
    await checkScreen(page, 'inspection overview', found);
    await complete.click();
    await signIfAsked(page, page.getByTestId('summary-screen'));
    await page.getByTestId('summary-screen').waitFor();
    await checkScreen(page, 'summary', found);

    await page.getByTestId('to-history').click();
    await page.getByTestId('history-screen').waitFor();
    await page.getByTestId('h-row').first().waitFor();
    await checkScreen(page, 'history', found);
    await page.getByTestId('h-open').first().click();
    await page.getByTestId('summary-screen').waitFor();
    await page.waitForLoadState('networkidle').catch(() => undefined);
    await checkScreen(page, 'history detail', found);

    await page.getByTestId('nav-dashboard').click();
    await page.getByTestId('chart').waitFor();
    await checkScreen(page, 'dashboard', found);

    await page.getByTestId('nav-settings').click();
    await page.getByTestId('settings-screen').waitFor();
    await page.getByTestId('settings-sync').waitFor();
    await checkScreen(page, 'settings', found);
    await h.shot(page, `i18n-ja-${width}-settings`);

    // The jobs' progress was seen, in words (the check above covered it as it showed).
    const seen = await screenTexts(page);
    assert.ok(
      seen.some((text) => /^AI 判定 · (写真の前処理|AI モデルを実行中|結果をまとめています|完了|処理中)$/.test(text)),
      `no job progress seen among ${seen.length} texts`,
    );
    // Each AI reason is worded, not printed: the Japanese names of what was measured.
    assert.match(reasons['V-SCRATCH'], /不良の確率/);
    assert.match(reasons['D-BORE'], /穴径 = 12(\.0+)?\s*mm/);
    assert.match(reasons['T-MARKING'], /ロット番号/);
    assert.deepEqual(found, [], `Latin runs outside the allow-list on the Japanese screens:\n  ${found.join('\n  ')}`);
    assert.deepEqual(page.problems, [], 'no page errors');
  } catch (err) {
    await h.shot(page, `i18n-ja-${width}-FAILED`).catch(() => undefined);
    throw err;
  } finally {
    await page.close();
  }
});

test(`ja at ${WIDTH} px: a record the server refused reads as what it is, and the server's reason as its words`, async () => {
  // The server's refusal as a tablet keeps it: an answer that came as a JSON document.
  execFileSync(
    h.PYTHON,
    [
      '-c',
      'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); ' +
        'c.execute("UPDATE outbox SET set_aside_at = \'2026-12-03T01:00:00+00:00\', set_aside_reason = ? ' +
        'WHERE seq = (SELECT min(seq) FROM outbox WHERE entity_type = \'inspection_session\')", (sys.argv[2],)); ' +
        'c.commit(); assert c.total_changes == 1',
      join(sidecar.data, 'kensa.db'),
      JSON.stringify({ detail: { message: 'version 3 is older than the server\'s 4' } }),
    ],
    { cwd: h.REPO },
  );
  // A colleague's inspection left open: the supervisor's resume dialog offers it, labelled.
  const inspector = h.apiFor(sidecar);
  await inspector.login('tanaka');
  await inspector.call('POST', '/sessions', { qr_code: JSON.stringify({ product_id: 'BRK-100', batch_id: BATCH, serial: 'SN-0050' }) });
  const page = await h.newPage(WIDTH);
  await page.addInitScript(recordTexts);
  const found = [];
  try {
    await page.goto(`${sidecar.baseUrl}/`);
    await page.getByTestId('login-screen').waitFor();
    await page.getByTestId('lang-ja').click();
    await page.getByTestId('username').fill('suzuki');
    await page.getByTestId('password').fill(h.PASSWORD);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('resume-dialog').waitFor();
    await checkScreen(page, 'resume dialog', found);
    await page.getByTestId('resume-later').click();
    await page.getByTestId('wedge').waitFor();
    await page.getByTestId('nav-settings').click();
    const op = page.getByTestId('set-aside-op');
    await op.waitFor();
    // The supervisor may send it again: the button follows the reason, in Japanese too.
    assert.match(await op.textContent(), /^検査 · (作成|変更).*サーバーの理由: version 3 is older than the server's 4 もう一度送る$/);
    assert.equal(await op.getByTestId('send-again').textContent(), 'もう一度送る');
    await checkScreen(page, 'settings with a record held back', found);
    assert.deepEqual(found, [], `Latin runs outside the allow-list on the Japanese screens:\n  ${found.join('\n  ')}`);
    await h.shot(page, 'i18n-ja-set-aside');
  } finally {
    await page.close();
  }
});

test(`en at ${WIDTH} px: the same reasons and measurements in English`, async () => {
  for (const open of await api.call('GET', '/sessions/interrupted')) {
    await api.call('POST', `/sessions/${open.id}/discard`, { signature: { password: h.PASSWORD, meaning: 'discarded' } });
  }
  const page = await h.newPage(WIDTH);
  await page.addInitScript(recordTexts, 'en');
  try {
    await page.goto(`${sidecar.baseUrl}/`);
    await page.getByTestId('login-screen').waitFor();
    await page.getByTestId('lang-en').click();
    await page.getByTestId('username').fill('tanaka');
    await page.getByTestId('password').fill(h.PASSWORD);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('wedge').waitFor();
    await page.getByTestId('wedge').fill(JSON.stringify({ product_id: 'BRK-100', batch_id: BATCH, serial: 'SN-0043' }));
    await page.getByTestId('wedge').press('Enter');
    await page.getByTestId('target-screen').waitFor();
    // The masters' English names, where the Japanese screens show the factory's own.
    assert.match(await page.getByTestId('target-screen').textContent(), /BRK-100 Brake caliper/);
    assert.deepEqual(
      await page.getByTestId('target-item').evaluateAll((els) => els.map((e) => e.querySelector('strong')?.textContent)),
      ['Surface scratches', 'Foreign matter', 'Stamped marking', 'Bore diameter', 'Piston operation'],
    );
    await page.getByTestId('start').click();
    const panel = await currentItem(page, 'V-SCRATCH');
    assert.match(await panel.locator('.item__head h2').textContent(), /^1\. Surface scratches V-SCRATCH$/);
    await photoAndAi(page, panel, 'photo-1.jpg');
    const reason = await panel.getByTestId('ai-reason').textContent();
    // The criteria line too: the measurement in words, the review band, no identifier.
    assert.equal(await panel.getByTestId('item-criteria').textContent(), 'Criteria: Defect probability < 0.5 · review band 0.3–0.7');
    assert.match(reason, /^Defect probability = [0-9.]+(: (meets|fails) Defect probability < 0\.5| is in the review band 0\.3–0\.7 \(by the rule alone: (OK|NG)\))$/);
    assert.match(await panel.getByTestId('ai-measurements').textContent(), /Defect probability/);
    assert.doesNotMatch(await panel.getByTestId('ai-card').textContent(), /brk100-|[0-9a-f]{8}-[0-9a-f]{4}-/);
    // Nothing Japanese on the English screens but people's names (the factory writes them so).
    const japanese = new Set();
    const shown = await screenTexts(page);
    assert.ok(shown.some((text) => text === 'Surface scratches'), `the English screens were read (${shown.length} texts)`);
    for (const text of shown) {
      for (const run of text.match(/[\u3040-\u30ff\u3400-\u9fff]+/g) ?? []) if (!/^(田中|鈴木|管理者)$/.test(run)) japanese.add(`${run} (in "${text.slice(0, 80)}")`);
    }
    assert.deepEqual([...japanese], [], 'Japanese on the English screens');
    assert.deepEqual(page.problems, [], 'no page errors');
  } catch (err) {
    await h.shot(page, 'i18n-en-FAILED').catch(() => undefined);
    throw err;
  } finally {
    await page.close();
  }
});
