// The shift's sync story in the browser: a tablet that pulled its masters from the server works
// offline (the badge says so, the unsent count grows), and when the server comes back the badge
// turns to synced without anyone touching the tablet.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

const KENSA = join(h.REPO, '.venv', 'bin', 'kensa');
const KENSA_SERVER = join(h.REPO, '.venv', 'bin', 'kensa-server');
let root;
let serverPort;
let server = null;
let sidecar = null;

function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

function kensa(args) {
  // The tablet's store is the plaintext development kind the harness's sidecar runs
  // (KENSA_PLAINTEXT=1): without it the command looks for the data key in the OS keystore.
  return execFileSync(KENSA, args, {
    cwd: h.REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KENSA_PLAINTEXT: '1' },
  });
}

/** `kensa-server run` on the fixed port, resolved once it prints its ready line. */
function startServer() {
  const child = spawn(KENSA_SERVER, ['run', '--data-dir', join(root, 'server'), '--port', String(serverPort)], {
    cwd: h.REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`server not ready: ${stderr}`)), 60_000);
    child.stdout.on('data', (chunk) => {
      if (chunk.toString().includes('"ready"')) {
        clearTimeout(timer);
        done(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited (${code}): ${stderr}`));
    });
  });
}

function stopServer() {
  return new Promise((done) => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return done();
    server.once('exit', () => done());
    server.kill('SIGTERM');
  });
}

/** The sync facts one place shows, as `{fact: raw value}` (SyncFacts puts them in data-value). */
function factsIn(page, where) {
  return page.evaluate((selector) => {
    const facts = {};
    for (const el of document.querySelectorAll(`${selector} [data-fact]`)) facts[el.dataset.fact] = el.dataset.value;
    return facts;
  }, where);
}

/**
 * The settings screen (GET /sync/status) and the status bar (the event stream) show the same
 * facts: both come from the sidecar's one status function. They are read on their own beats,
 * so wait for one beat to bring them together, then compare.
 */
async function sameFactsOnSettingsAndStatusBar(page) {
  await page.getByTestId('nav-settings').click();
  await page.locator('[data-testid=settings-sync] [data-fact=state]').waitFor();
  await page
    .waitForFunction(
      () => {
        const read = (selector) =>
          JSON.stringify(Object.fromEntries([...document.querySelectorAll(`${selector} [data-fact]`)].map((el) => [el.dataset.fact, el.dataset.value])));
        return read('[data-testid=statusbar]') === read('[data-testid=settings-sync]');
      },
      null,
      { timeout: 10_000 },
    )
    .catch(() => undefined);
  const bar = await factsIn(page, '[data-testid=statusbar]');
  const settings = await factsIn(page, '[data-testid=settings-sync]');
  assert.deepEqual(settings, bar);
  return bar;
}

before(async () => {
  root = h.tempDir('kensa-e2e-sync-');
  serverPort = await freePort();
  // The demo site (dev tooling), published to the server as real masters are.
  execFileSync(h.PYTHON, ['-m', 'scripts.devkit.seed_demo', '--data-dir', join(root, 'server'), '--tokens-file', join(root, 'tokens.json')], {
    cwd: h.REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const token = JSON.parse(readFileSync(join(root, 'tokens.json'), 'utf8'))['TAB-01'];
  // 07:55, on the network: the tablet pulls users, masters, pipelines and models.
  server = await startServer();
  const tablet = join(root, 'tablet');
  kensa(['device', 'connect', '--server', `http://127.0.0.1:${serverPort}`, '--token', token, '--data-dir', tablet]);
  kensa(['device', 'sync-now', '--data-dir', tablet]);
  // 08:00, the Wi-Fi drops.
  await stopServer();
  sidecar = await h.startSidecar({ data: tablet });
  await h.launchBrowser();
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
  await stopServer();
});

test('the offline badge turns to synced when the server comes up', async () => {
  const page = await h.newPage(1280);
  await page.goto(`${sidecar.baseUrl}/`);
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId('lang-ja').click();
  // Cached credentials pulled from the server: the login works with the server down.
  await page.getByTestId('username').fill('tanaka');
  await page.getByTestId('password').fill('tanaka-demo');
  await page.getByTestId('login-submit').click();
  const badge = page.getByTestId('sync-badge');
  await page.waitForFunction(
    () => document.querySelector('[data-testid=sync-badge]')?.getAttribute('data-state') === 'offline',
    null,
    { timeout: 30_000 },
  );

  // Work recorded offline: an inspection started by the wedge scanner waits in the outbox.
  const wedge = page.getByTestId('wedge');
  await wedge.waitFor();
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
  await page.keyboard.type(h.QR_JSON, { delay: 0 });
  await page.keyboard.press('Enter');
  await page.getByTestId('target-screen').waitFor();
  await page.getByTestId('start').click();
  await page.waitForFunction(
    () => /[1-9]/.test(document.querySelector('[data-testid=pending]')?.textContent ?? ''),
    null,
    { timeout: 15_000 },
  );
  await h.shot(page, 'sync-ja-1280-offline');
  assert.equal(await badge.getAttribute('data-state'), 'offline');
  assert.equal(await badge.textContent(), 'オフライン');

  // The settings screen says what the status bar says: offline, the same unsent count, the
  // same last sync and the same error.
  const offline = await sameFactsOnSettingsAndStatusBar(page);
  assert.equal(offline.state, 'offline');
  assert.match(offline.pending, /^[1-9]/);
  assert.ok(offline['last-error'], 'the failed attempt is shown while it stands');
  await h.shot(page, 'sync-ja-1280-settings-offline');

  // 16:05 the Wi-Fi returns: nobody touches the tablet.
  server = await startServer();
  await page.waitForFunction(
    () => document.querySelector('[data-testid=sync-badge]')?.getAttribute('data-state') === 'synced',
    null,
    { timeout: 60_000 },
  );
  assert.equal(await badge.textContent(), '同期済み');
  await h.shot(page, 'sync-ja-1280-synced');
  // Synced, on both: nothing waits, and the old error is gone from both once a sync got through.
  const synced = await sameFactsOnSettingsAndStatusBar(page);
  assert.equal(synced.state, 'synced');
  assert.equal(synced.pending, '0');
  assert.equal(synced['last-error'], undefined);
  assert.deepEqual(page.problems, []);
});
