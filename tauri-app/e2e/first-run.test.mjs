// A fresh install in the browser: the setup screen instead of a login nobody can pass, and its
// two ways to the login — stand-alone with a made administrator password shown once, and the
// enrollment QR from a real `kensa-server device add --qr` read by the scan field.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const KENSA_SERVER = join(h.REPO, '.venv', 'bin', 'kensa-server');
const USER_PASSWORD = 'tanaka-pass-1';
let root;
let serverPort;
let server = null;

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

function serverCli(args) {
  return execFileSync(KENSA_SERVER, [...args, '--data-dir', join(root, 'server')], {
    cwd: h.REPO,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

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

before(async () => {
  root = h.tempDir('kensa-first-run-');
  serverPort = await freePort();
  server = await startServer();
  serverCli(['user', 'add', 'tanaka', '--role', 'inspector', '--password', USER_PASSWORD, '--full-name', '田中']);
});

after(async () => {
  await h.closeBrowser();
  if (server && server.exitCode === null) {
    await new Promise((done) => {
      server.once('exit', done);
      server.kill('SIGTERM');
    });
  }
});

/** axe-core's serious and critical violations on the setup screen as it is now. */
async function axe(page, where) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], where);
}

/** A sidecar on an empty data folder: no users, no server. */
async function freshTablet() {
  return h.startSidecar({ data: join(h.tempDir('kensa-fresh-'), 'data') });
}

async function logIn(page, username, password) {
  await page.getByTestId('login-screen').waitFor();
  await page.getByTestId('username').fill(username);
  await page.getByTestId('password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('user-name').waitFor();
}

test('stand-alone: the administrator is made, its password shown once, and it logs in', async () => {
  const sidecar = await freshTablet();
  try {
    const page = await h.newPage(900);
    await page.goto(sidecar.baseUrl);
    await page.getByTestId('setup-screen').waitFor();
    assert.equal(await page.getByTestId('login-screen').count(), 0);
    assert.deepEqual(await h.smallTargets(page), []);
    await axe(page, 'choose (ja)');
    await h.shot(page, 'first-run-choose-ja');

    await page.getByTestId('setup-standalone').click();
    assert.deepEqual(await h.smallTargets(page), []);
    // A password against the rules is refused in words, and nothing is made.
    await page.getByTestId('setup-username').fill('chief');
    await page.getByTestId('setup-password-input').fill('short');
    await page.getByTestId('setup-standalone-submit').click();
    await page.getByTestId('setup-error').waitFor();
    assert.match(await page.getByTestId('setup-error').innerText(), /10 文字以上/);
    await axe(page, 'stand-alone with an error (ja)');

    await page.getByTestId('setup-password-input').fill('');
    await page.getByTestId('setup-standalone-submit').click();
    const password = (await page.getByTestId('setup-password').innerText()).trim();
    assert.ok(password.length >= 10, password);
    await axe(page, 'password shown once (ja)');
    await h.shot(page, 'first-run-password-once');
    await page.getByTestId('setup-done').click();

    await logIn(page, 'chief', password);
    // Reloading after the first run shows the login, never the setup screen again.
    await page.getByTestId('logout').click();
    await page.reload();
    await page.getByTestId('login-screen').waitFor();
    assert.equal(await page.getByTestId('setup-screen').count(), 0);
    assert.deepEqual(page.problems, []);
    await page.close();
  } finally {
    await sidecar.kill();
  }
});

test('by enrollment QR: the scan fills server and code, the users arrive, the inspector logs in', async () => {
  const serverUrl = `http://127.0.0.1:${serverPort}`;
  const out = serverCli(['device', 'add', 'TAB-E2E', '--qr', '--server-url', serverUrl]);
  const code = /enrollment code: (\S+)/.exec(out)?.[1];
  assert.ok(code, out);
  const qr = `kensa://enroll?server=${encodeURIComponent(serverUrl)}&code=${code}`;

  const sidecar = await freshTablet();
  try {
    const page = await h.newPage(600);
    await page.goto(sidecar.baseUrl);
    await page.getByTestId('setup-screen').waitFor();
    // English too: the language switch works before anyone logs in.
    await page.getByTestId('lang-en').click();
    await page.getByTestId('setup-connect').click();
    assert.deepEqual(await h.smallTargets(page), []);

    // A wrong code is refused in words and leaves the tablet unset.
    await page.getByTestId('setup-server-url').fill(serverUrl);
    await page.getByTestId('setup-code').fill('ABCDE-FGHJK');
    await page.getByTestId('setup-connect-submit').click();
    await page.getByTestId('setup-error').waitFor();
    assert.match(await page.getByTestId('setup-error').innerText(), /not known/);
    await axe(page, 'connect with an error (en)');

    // The wedge scanner types the QR's text (and Enter) into the focused scan field.
    await page.getByTestId('setup-server-url').fill('');
    await page.getByTestId('setup-code').fill('');
    await page.getByTestId('setup-scan').focus();
    await page.keyboard.type(qr);
    await page.keyboard.press('Enter');
    assert.equal(await page.getByTestId('setup-server-url').inputValue(), serverUrl);
    assert.equal(await page.getByTestId('setup-code').inputValue(), code);
    await h.shot(page, 'first-run-connect-en');

    await page.getByTestId('setup-connect-submit').click();
    await logIn(page, 'tanaka', USER_PASSWORD);
    assert.equal(await page.getByTestId('user-name').innerText(), '田中');

    // The code is spent: the server says so to anyone trying it again.
    const again = await fetch(`${serverUrl}/sync/v1/enroll`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code }),
    });
    assert.equal(again.status, 409);
    assert.deepEqual(page.problems, []);
    await page.close();
  } finally {
    await sidecar.kill();
  }
});
