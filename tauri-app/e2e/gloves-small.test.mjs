// The small ones with gloves, in a real browser against a real sidecar: the event stream's URL
// carries a single-use ticket, never the launch token.
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
