// The small ones with gloves, in a real browser against a real sidecar: the event stream's URL
// carries a single-use ticket, never the launch token; a started inspection says so; the
// summary names the inspector as people know them; the dashboard's axis counts whole
// inspections over the chart's whole width; a work-order label shows its order as an order.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

let sidecar;
let seeded;

before(async () => {
  seeded = h.seed({ pipelines: false });
  sidecar = await h.startSidecar({ data: seeded.data });
  await h.launchBrowser({ fixtures: seeded.fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

test('the event stream is opened with a single-use ticket, never with the launch token in its URL', async () => {
  const page = await h.newPage(800);
  const streams = [];
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.pathname === '/events') streams.push(url);
  });
  try {
    await page.goto(`${sidecar.baseUrl}/`);
    await page.getByTestId('login-screen').waitFor();
    // The status bar lives on the stream: its first sync summary shows what waits to be sent.
    await page.getByTestId('pending').waitFor();
    assert.ok(streams.length >= 1);
    for (const url of streams) {
      assert.equal(url.searchParams.get('token'), null, url.href);
      assert.ok(!url.href.includes(encodeURIComponent(sidecar.token)) && !url.href.includes(sidecar.token), url.href);
      assert.ok((url.searchParams.get('ticket') ?? '').length >= 40, url.href);
    }
    // Each ticket opens the stream once: a spent one is refused.
    const spent = streams[0].href;
    const again = await page.evaluate(async (url) => (await fetch(url)).status, spent);
    assert.equal(again, 401);
    assert.deepEqual(page.problems.filter((p) => !p.includes('401')), []);
  } finally {
    await page.close();
  }
});

const WORDS = {
  ja: { started: '開始済み', notStarted: '開始前', workOrder: '作業指示番号', lot: 'ロット' },
  en: { started: 'Started', notStarted: 'Not started', workOrder: 'Work order', lot: 'Batch' },
};

async function logIn(page, user, lang) {
  await page.goto(`${sidecar.baseUrl}/`);
  await page.evaluate(() => window.localStorage.clear()); // the browser's profile is shared
  await page.reload();
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId(`lang-${lang}`).click();
  await page.getByTestId('username').fill(user);
  await page.getByTestId('password').fill(h.PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-screen').waitFor({ state: 'detached' });
  const later = page.getByTestId('resume-later');
  await page.waitForTimeout(300);
  if (await later.count()) await later.click(); // inspections an earlier test left open
}

for (const lang of ['ja', 'en']) {
  test(`${lang}: right after the start the status says started; the summary names 田中; the dashboard counts whole inspections across its width`, async () => {
    const W = WORDS[lang];
    const page = await h.newPage(1280);
    try {
      await logIn(page, 'tanaka', lang);
      await page.getByTestId('wedge').fill(JSON.stringify({ product_id: 'BRK-100', batch_id: `CHIP-${lang}`, serial: '1' }));
      await page.getByTestId('wedge').press('Enter');
      await page.getByTestId('target-screen').waitFor();
      assert.equal(await page.getByTestId('target-batch-label').textContent(), W.lot);
      await page.getByTestId('start').click();
      const chip = page.getByTestId('session-status');
      await chip.waitFor();
      assert.equal((await chip.textContent()).trim(), W.started);
      const sessionId = decodeURIComponent((await page.evaluate(() => window.location.hash)).split('/')[2]);

      // Judged and completed (through the API: the screens for that are tested elsewhere).
      const api = h.apiFor(sidecar);
      await api.login('tanaka');
      const detail = await api.call('GET', `/sessions/${sessionId}`);
      for (const item of detail.items) {
        await api.call('POST', `/sessions/${sessionId}/items/${item.item_id}/verification`, { final_result: 'OK', verification_time: 1 });
      }
      await api.call('POST', `/sessions/${sessionId}/complete`);
      await page.evaluate((id) => (window.location.hash = `#/history/${encodeURIComponent(id)}`), sessionId);
      await page.getByTestId('summary-screen').waitFor();
      assert.equal(await page.getByTestId('summary-inspector').textContent(), '田中');

      await page.getByTestId('nav-dashboard').click();
      await page.getByTestId('dashboard-screen').waitFor();
      await page.getByTestId('chart').waitFor();
      const ticks = await page.getByTestId('chart-tick').allTextContents();
      assert.ok(ticks.length >= 2, ticks.join(','));
      for (const tick of ticks) assert.match(tick.trim(), /^\d+$/, `axis tick ${tick}`);
      const { svg, box } = await page.locator('.chart__scroll').evaluate((el) => ({
        svg: el.querySelector('svg').getBoundingClientRect().width,
        box: el.clientWidth,
      }));
      assert.ok(svg >= 0.9 * box && svg <= box + 1, `chart ${svg} px in ${box} px`);
      await h.shot(page, `gloves-small-${lang}-1280-dashboard`);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  });

  test(`${lang}: a work-order label shows its order number as the work order, not as a lot`, async () => {
    const W = WORDS[lang];
    const page = await h.newPage(800);
    try {
      await logIn(page, 'tanaka', lang);
      const order = {
        workOrderId: `WO${lang}77`,
        instructionId: 'IN5521',
        productCode: 'BRK-100',
        machineNumber: 'M3',
        productionDate: '2026-12-01',
        monthlySequence: 7,
      };
      await page.getByTestId('wedge').fill(JSON.stringify(order));
      await page.getByTestId('wedge').press('Enter');
      await page.getByTestId('target-screen').waitFor();
      assert.equal(await page.getByTestId('target-batch-label').textContent(), W.workOrder);
      assert.equal(await page.getByTestId('target-batch').textContent(), order.workOrderId);
      assert.equal(await page.getByTestId('target-machineNumber').textContent(), 'M3');
      assert.equal(await page.getByTestId('target-productionDate').textContent(), '2026-12-01');
      assert.doesNotMatch(await page.getByTestId('target-screen').textContent(), new RegExp(`${W.lot}\\s*${order.workOrderId}`));
      assert.deepEqual(await h.smallTargets(page), []);
      await h.shot(page, `gloves-small-${lang}-800-work-order`);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  });
}
