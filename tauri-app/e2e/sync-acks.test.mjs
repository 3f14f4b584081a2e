// Where an inspection's records stand, in the browser: on this tablet while the server is away,
// received once it has stored them, applied once its queue processor has run (the history row and
// the status bar both say so); and a version conflict a supervisor resolves side by side on the
// settings screen, after which the inspection reads as applied again.
//
// The server runs with no queue processor of its own; the test runs `kensa-server process --once`
// when it wants the queue applied, so "received" can be seen at all.
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

function run(command, args) {
  return execFileSync(command, args, {
    cwd: h.REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KENSA_PLAINTEXT: '1' },
  });
}

function startServer() {
  const args = ['run', '--data-dir', join(root, 'server'), '--port', String(serverPort), '--processors', '0'];
  const child = spawn(KENSA_SERVER, args, { cwd: h.REPO, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** The server's queue processor, once through what is due. */
function drain() {
  run(KENSA_SERVER, ['process', '--once', '--data-dir', join(root, 'server')]);
}

/** A Python snippet over both databases (the server's is SQLite in the embedded default). */
function python(code) {
  return run(h.PYTHON, ['-c', code]);
}

async function login(page, username, password) {
  await page.goto(`${sidecar.baseUrl}/`);
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId('lang-ja').click();
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('wedge').waitFor();
}

/** The history row's sync state, reloading the list until it reads `wanted`. */
async function historyReads(page, wanted, timeout = 60_000) {
  const deadline = Date.now() + timeout;
  let seen = null;
  while (Date.now() < deadline) {
    await page.getByTestId('nav-history').click();
    await page.getByTestId('h-rows').waitFor();
    seen = await page.getByTestId('h-sync').first().getAttribute('data-state');
    if (seen === wanted) return page.getByTestId('h-sync').first();
    await page.getByTestId('nav-scan').click();
    await page.waitForTimeout(500);
  }
  throw new Error(`history read ${seen}, not ${wanted}`);
}

/** Until the tablet's outbox is empty: everything pushed and stored by the server. */
async function pushed(timeout = 30_000) {
  const api = h.apiFor(sidecar);
  const deadline = Date.now() + timeout;
  let status = null;
  while (Date.now() < deadline) {
    status = await api.call('GET', '/sync/status');
    if (status.pending_rows === 0) return;
    await new Promise((done) => setTimeout(done, 300));
  }
  throw new Error(`still unsent: ${JSON.stringify(status)}`);
}

before(async () => {
  root = h.tempDir('kensa-e2e-acks-');
  serverPort = await freePort();
  execFileSync(h.PYTHON, ['-m', 'scripts.devkit.seed_demo', '--data-dir', join(root, 'server'), '--tokens-file', join(root, 'tokens.json')], {
    cwd: h.REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const token = JSON.parse(readFileSync(join(root, 'tokens.json'), 'utf8'))['TAB-01'];
  server = await startServer();
  const tablet = join(root, 'tablet');
  run(KENSA, ['device', 'connect', '--server', `http://127.0.0.1:${serverPort}`, '--token', token, '--data-dir', tablet]);
  run(KENSA, ['device', 'sync-now', '--data-dir', tablet]);
  await stopServer();
  // A short interval: the acknowledgements arrive with the next pull.
  process.env.KENSA_SYNC_INTERVAL_S = '1';
  sidecar = await h.startSidecar({ data: tablet });
  await h.launchBrowser();
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
  await stopServer();
});

test('an inspection reads on this tablet, then received, then applied on the server', async () => {
  const page = await h.newPage(1280);
  await login(page, 'tanaka', 'tanaka-demo');
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
  await page.keyboard.type(h.QR_JSON, { delay: 0 });
  await page.keyboard.press('Enter');
  await page.getByTestId('target-screen').waitFor();
  await page.getByTestId('start').click();
  await page.getByTestId('session-screen').waitFor();

  const local = await historyReads(page, 'local', 15_000);
  assert.equal(await local.textContent(), '端末のみ');
  await page.waitForFunction(
    () => document.querySelector('[data-testid=statusbar] [data-fact=inspections]')?.getAttribute('data-value')?.startsWith('1/0/'),
    null,
    { timeout: 15_000 },
  );
  await h.shot(page, 'sync-acks-ja-1280-local');

  server = await startServer();
  const received = await historyReads(page, 'received');
  assert.equal(await received.textContent(), 'サーバー受信済み');
  await page.waitForFunction(
    () => document.querySelector('[data-testid=statusbar] [data-fact=inspections]')?.getAttribute('data-value')?.startsWith('0/1/'),
    null,
    { timeout: 15_000 },
  );
  await h.shot(page, 'sync-acks-ja-1280-received');

  drain();
  const applied = await historyReads(page, 'applied');
  assert.equal(await applied.textContent(), 'サーバー反映済み');
  await page.waitForFunction(
    () => /^0\/0\/[1-9]/.test(document.querySelector('[data-testid=statusbar] [data-fact=inspections]')?.getAttribute('data-value') ?? ''),
    null,
    { timeout: 15_000 },
  );
  await h.shot(page, 'sync-acks-ja-1280-applied');
  assert.deepEqual(page.problems, []);
});

test('a supervisor sees both versions of a conflict side by side and keeps the server’s', async () => {
  // The inspection's record changed on both sides since the version both hold: the server's
  // now has a result, and the tablet cancelled it in a version the server never saw.
  const made = python(`
import json, sqlite3, uuid
from datetime import UTC, datetime
import sqlalchemy as sa
from schema import server as s
from schema.db import create_engine
tablet = sqlite3.connect(${JSON.stringify(join(root, 'tablet', 'kensa.db'))})
sid, version = tablet.execute("SELECT id, version FROM inspection_sessions ORDER BY started_at DESC LIMIT 1").fetchone()
engine = create_engine("sqlite:///" + ${JSON.stringify(join(root, 'server', 'server.db'))})
table = s.InspectionSession.__table__
with engine.begin() as conn:
    conn.execute(sa.update(table).where(table.c.id == uuid.UUID(sid)).values(version=version + 1, result="NG"))
engine.dispose()
now = datetime.now(UTC)
with tablet:
    tablet.execute("UPDATE inspection_sessions SET status = 'cancelled', completed_at = ?, version = ? WHERE id = ?",
                   (now.strftime("%Y-%m-%d %H:%M:%S.%f"), version + 2, sid))
    tablet.execute("INSERT INTO outbox (op_id, entity_type, entity_id, operation, data, priority, retry_count, created_at) "
                   "VALUES (?, 'inspection_session', ?, 'UPDATE', ?, 0, 0, ?)",
                   (str(uuid.uuid4()), sid, json.dumps({"id": sid, "status": "cancelled", "completed_at": now.isoformat(),
                    "base_version": version, "version": version + 2}), now.strftime("%Y-%m-%d %H:%M:%S.%f")))
print(sid)
`).trim();
  assert.match(made, /^[0-9a-f-]{36}$/);

  const page = await h.newPage(1280);
  await login(page, 'suzuki', 'suzuki-demo');
  // Pushed and stored, then refused by the queue: the inspection needs attention.
  await pushed();
  drain();
  const attention = await historyReads(page, 'attention');
  assert.equal(await attention.textContent(), '要確認');
  await page.locator('[data-testid=statusbar] [data-fact=attention]').waitFor();

  await page.getByTestId('nav-settings').click();
  const conflict = page.locator('[data-testid=refusal][data-kind=conflict]');
  await conflict.waitFor({ timeout: 30_000 });
  assert.equal(await conflict.getAttribute('data-code'), 'version_conflict');
  // Listed once, with the server's version beside it; not again among the operations set aside.
  // The screen opened afresh reads the status and the refusals after both were stored.
  await page.getByTestId('nav-history').click();
  await page.getByTestId('nav-settings').click();
  await page.getByTestId('sync-server').waitFor();
  await conflict.waitFor();
  assert.equal(
    await page.locator('[data-testid=settings-sync] [data-fact=set-aside]').getAttribute('data-value'),
    '1',
  );
  assert.equal(await page.getByTestId('set-aside-op').count(), 0);
  const sides = conflict.getByTestId('refusal-sides');
  assert.equal(await sides.locator('[data-field=status] [data-side=tablet]').textContent(), '中止');
  assert.equal(await sides.locator('[data-field=result] [data-side=server]').textContent(), '不合格');
  await h.shot(page, 'sync-acks-ja-1280-conflict');
  await conflict.getByTestId('keep-server').click();
  await conflict.waitFor({ state: 'detached', timeout: 15_000 });

  // The choice travels as a new change; once applied, the inspection reads applied again.
  await pushed();
  drain();
  const applied = await historyReads(page, 'applied');
  assert.equal(await applied.textContent(), 'サーバー反映済み');
  const [[status, result]] = JSON.parse(
    python(`
import json, sqlalchemy as sa
from schema.db import create_engine
engine = create_engine("sqlite:///" + ${JSON.stringify(join(root, 'server', 'server.db'))})
with engine.connect() as conn:
    print(json.dumps([list(r) for r in conn.execute(sa.text("SELECT status, result FROM inspection_sessions"))]))
`),
  );
  assert.deepEqual([status, result], ['identified', 'NG']);
  assert.deepEqual(page.problems, []);
});
