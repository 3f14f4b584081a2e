// The small ones with gloves, in a real browser against a real sidecar: the event stream's URL
// carries a single-use ticket, never the launch token; a started inspection says so; the
// summary names the inspector as people know them; the dashboard's axis counts whole
// inspections over the chart's whole width; a work-order label shows its order as an order; a
// connected tablet's settings show its server; the AI button disabled for want of a photo says
// so; and on a phone the tab labels keep to one line, the header to two rows, and the history's
// search button sits above the tab bar.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
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
  const interrupted = page.waitForResponse((r) => r.url().includes('/sessions/interrupted'));
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-screen').waitFor({ state: 'detached' });
  // Inspections an earlier test left open are offered for resuming, every one the list holds:
  // put them off once the dialog is drawn (the page behind it takes no taps).
  if ((await (await interrupted).json()).length) await page.getByTestId('resume-later').click();
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
      const { completed_at: completedAt } = await api.call('POST', `/sessions/${sessionId}/complete`);
      await page.evaluate((id) => (window.location.hash = `#/history/${encodeURIComponent(id)}`), sessionId);
      await page.getByTestId('summary-screen').waitFor();
      assert.equal(await page.getByTestId('summary-inspector').textContent(), '田中');

      await page.getByTestId('nav-dashboard').click();
      await page.getByTestId('dashboard-screen').waitFor();
      await page.getByTestId('chart').waitFor();
      const ticks = await page.getByTestId('chart-tick').allTextContents();
      assert.ok(ticks.length >= 2, ticks.join(','));
      for (const tick of ticks) assert.match(tick.trim(), /^\d+$/, `axis tick ${tick}`);
      // Counted on its day in the tablet's time zone (Tokyo here), not in UTC, whose date is a
      // different one from 15:00 to midnight UTC.
      const localDay = await page.evaluate((at) => new Date(at).toLocaleDateString('sv-SE'), completedAt);
      assert.ok(
        (await page.getByTestId('dash-row').evaluateAll((rows) => rows.map((r) => r.dataset.period))).includes(localDay),
        `a row for ${localDay}`,
      );
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

const SERVER = 'https://kensa-server.example:8443';

/** A tablet connected to a server, as `kensa device connect` leaves it (the server is not there). */
async function connectedTablet() {
  const own = h.seed();
  const script = [
    'import sys',
    'from pydantic import SecretStr',
    'from schema.db import Database, create_sqlite_engine',
    'from sync.device import config',
    'db = Database(create_sqlite_engine(sys.argv[1]))',
    'with db.atomic() as session:',
    '    config.swap(session, sys.argv[2], SecretStr("t" * 32), "dev-1", "TAB-01")',
    'db.dispose()',
  ].join('\n');
  execFileSync(h.PYTHON, ['-c', script, join(own.data, 'kensa.db'), SERVER], { cwd: h.REPO, stdio: 'inherit' });
  return h.startSidecar({ data: own.data });
}

const TEXT = {
  ja: { needsPhoto: 'AI 判定には写真が必要です', run: 'AI 判定を実行' },
  en: { needsPhoto: 'AI judgment needs a photo first', run: 'Run AI judgment' },
};

test('a connected tablet shows its server in settings, and the AI button without a photo says one is needed', async () => {
  const tablet = await connectedTablet();
  const base = sidecar;
  sidecar = tablet; // logIn goes to `sidecar`
  try {
    for (const lang of ['ja', 'en']) {
      const page = await h.newPage(800);
      try {
        await logIn(page, 'admin', lang);
        await page.getByTestId('nav-settings').click();
        await page.getByTestId('settings-screen').waitFor();
        await page.waitForFunction((url) => document.querySelector('[data-testid="server-url"]')?.value === url, SERVER);
        await h.shot(page, `gloves-small-${lang}-800-settings-connected`);

        const api = h.apiFor(tablet);
        await api.login('tanaka');
        const started = await api.call('POST', '/sessions', { qr_code: JSON.stringify({ product_id: 'BRK-100', batch_id: `AI-${lang}` }) });
        const item = started.items.find((i) => i.ai_enabled);
        assert.ok(item, 'an item with AI');
        await page.getByTestId('logout').click();
        await logIn(page, 'tanaka', lang);
        await page.evaluate(([sid, iid]) => (window.location.hash = `#/session/${sid}/item/${iid}`), [started.id, item.item_id]);
        const button = page.locator(`[data-testid="item-panel"][data-code="${item.item_code}"] [data-testid="analyse"]`);
        await button.waitFor();
        assert.equal(await button.isDisabled(), true);
        assert.equal((await button.textContent()).trim(), TEXT[lang].needsPhoto);
        assert.deepEqual(page.problems, []);
      } finally {
        await page.close();
      }
    }
  } finally {
    sidecar = base;
    await tablet.stop();
  }
});

for (const lang of ['ja', 'en']) {
  test(`${lang}: on a phone the tab labels keep to one line, the header to two rows, and the history's search sits above the tab bar`, async () => {
    const page = await h.newPage(390);
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await logIn(page, 'tanaka', lang);
      await page.getByTestId('nav-history').click();
      await page.getByTestId('history-screen').waitFor();
      const facts = await page.evaluate(() => {
        const lines = (el) => {
          const range = document.createRange();
          range.selectNodeContents(el);
          return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        };
        return {
          labels: [...document.querySelectorAll('.nav__label')].map((el) => [el.textContent, lines(el)]),
          topbar: document.querySelector('.topbar').getBoundingClientRect().height,
          search: document.querySelector('[data-testid="h-search"]').getBoundingClientRect().bottom,
          tabs: document.querySelector('.nav').getBoundingClientRect().top,
          width: document.documentElement.scrollWidth,
        };
      });
      for (const [text, lines] of facts.labels) assert.equal(lines, 1, `tab label ${text} on ${lines} lines`);
      // Two rows of 48 px controls and padding: brand and user, then the sync facts.
      assert.ok(facts.topbar <= 100, `header ${facts.topbar} px high`);
      assert.ok(facts.search <= facts.tabs, `search button ends at ${facts.search}, tab bar starts at ${facts.tabs}`);
      assert.ok(facts.width <= 390, `page ${facts.width} px wide`);
      await h.shot(page, `gloves-small-${lang}-390-history`);
      assert.deepEqual(page.problems, []);
    } finally {
      await page.close();
    }
  });
}
