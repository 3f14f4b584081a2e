// The end-to-end harness: a real sidecar process over a seeded data directory, serving the built
// UI, and one headless Debian Chromium driven by playwright-core (no browser download).
//
// Everything started here is registered and killed on exit, on failure and on SIGINT/SIGTERM.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const APP = resolve(here, '..');
export const REPO = resolve(APP, '..');
// KENSA_E2E_DIST: a UI built elsewhere (e.g. of another revision, to see a test fail without a fix).
export const DIST = process.env.KENSA_E2E_DIST ?? join(APP, 'dist');
export const ARTIFACTS = process.env.KENSA_UI_ARTIFACTS ?? join(REPO, 'artifacts', 'ui');
export const PYTHON = process.env.KENSA_PYTHON ?? join(REPO, '.venv', 'bin', 'python');
export const CHROMIUM = process.env.KENSA_CHROMIUM ?? '/usr/bin/chromium';
export const PASSWORD = 'kensa-demo-1';
export const QR_JSON = '{"product_id": "BRK-100", "batch_id": "A12-3456", "serial": "0098172"}';
export const WIDTHS = [600, 900, 1280];

const children = new Set();
const tempDirs = new Set();
let browser = null;

function cleanup() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  children.clear();
  if (!process.env.KENSA_E2E_KEEP) {
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  }
  tempDirs.clear();
}

process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    cleanup();
    process.exit(130);
  });
}

export function tempDir(prefix = 'kensa-e2e-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** A data directory with the BRK-100 masters and users, and the upload fixtures. */
export function seed({ pipelines = true } = {}) {
  const root = tempDir();
  const data = join(root, 'data');
  const fixtures = join(root, 'fixtures');
  const args = ['-m', 'tests.support.seed_cli', data, '--fixtures', fixtures];
  if (!pipelines) args.push('--no-pipelines');
  execFileSync(PYTHON, args, {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  });
  return { root, data, fixtures };
}

/** Start `python -m sidecar` as for a browser UI (the token in the page), and wait for its ready line. */
export async function startSidecar({ data, token = randomBytes(18).toString('base64url'), port, aiWorkers = 0 } = {}) {
  if (!existsSync(join(DIST, 'index.html'))) {
    throw new Error(`no built UI in ${DIST}: run npm run build first`);
  }
  const args = ['-m', 'sidecar'];
  if (port) args.push('--port', String(port));
  const child = spawn(PYTHON, args, {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      KENSA_TOKEN: token,
      KENSA_DATA_DIR: data,
      KENSA_UI_DIST: DIST,
      // A browser drives this UI, so the sidecar writes the launch token into the page.
      KENSA_BROWSER_UI: '1',
      // The login-signing key file goes beside the data, not into this user's config folder.
      KENSA_CONFIG_DIR: join(dirname(data), 'config'),
      KENSA_AI_WORKERS: String(aiWorkers),
      // The seeded store is plaintext (seed_cli writes it without a key), as in the Python
      // tests: some tests read and alter its rows with plain sqlite3. The settings screen shows
      // such a store as a warning.
      KENSA_PLAINTEXT: '1',
      KENSA_LOG_LEVEL: 'WARNING',
      PYTHONDONTWRITEBYTECODE: '1',
    },
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const ready = await new Promise((resolveReady, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`sidecar not ready in 60 s: ${stderr}`)), 60_000);
    child.stdout.on('data', (chunk) => {
      out += chunk.toString();
      const newline = out.indexOf('\n');
      if (newline >= 0) {
        clearTimeout(timer);
        try {
          resolveReady(JSON.parse(out.slice(0, newline)));
        } catch (err) {
          reject(err);
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sidecar exited (${code}) before ready: ${stderr}`));
    });
  });
  const baseUrl = `http://127.0.0.1:${ready.port}`;
  return {
    child,
    token,
    port: ready.port,
    baseUrl,
    data,
    stderr: () => stderr,
    /** SIGKILL: the process is gone at once, as when a tablet's battery dies. */
    kill() {
      return new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGKILL');
      });
    },
    /** A clean stop: close stdin, as the Tauri shell does when it exits. */
    stop() {
      return new Promise((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(timer);
          children.delete(child);
          done();
        });
        child.stdin.end();
      });
    },
  };
}

/** A small API client for the test itself (what the AI pipeline would post, checks). */
export function apiFor(sidecar) {
  let login = null;
  const call = async (method, path, body) => {
    const headers = { Authorization: `Bearer ${sidecar.token}` };
    if (login) headers['X-Kensa-Session'] = login;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(sidecar.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return json;
  };
  return {
    call,
    async login(username = 'tanaka') {
      login = null;
      const res = await call('POST', '/auth/login', { username, password: PASSWORD });
      login = res.token;
      return res;
    },
  };
}

export async function launchBrowser({ fixtures } = {}) {
  if (browser) return browser;
  const profile = tempDir('kensa-chromium-');
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
    // A camera that plays the QR label (Chromium's fake capture device) for the camera scan.
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
  ];
  if (fixtures) args.push(`--use-file-for-fake-video-capture=${join(fixtures, 'label.y4m')}`);
  // launchPersistentContext takes the fresh --user-data-dir; playwright adds --headless.
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args,
    viewport: { width: 1280, height: 900 },
    locale: 'ja-JP',
    timezoneId: 'Asia/Tokyo',
  });
  return browser;
}

export async function closeBrowser() {
  if (browser) {
    const b = browser;
    browser = null;
    await b.close().catch(() => undefined);
  }
}

/** A fresh page at a width (heights follow a tablet's aspect). */
export async function newPage(width) {
  const context = await launchBrowser();
  const page = await context.newPage();
  await page.setViewportSize({ width, height: width < 768 ? 1000 : width <= 1024 ? 1100 : 900 });
  page.setDefaultTimeout(15_000);
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED|net::ERR/.test(msg.text())) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  page.problems = problems;
  return page;
}

export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  // From the top, so sticky bars sit where the inspector sees them.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Every visible control is at least 48 × 48 px (gloved hands). Returns the offenders. */
export async function smallTargets(page) {
  return page.evaluate(() => {
    const selector = 'button, a[href], input:not([type=file]):not([type=hidden]), select, textarea, summary, [role=button]';
    const bad = [];
    for (const el of document.querySelectorAll(selector)) {
      if (el.closest('.visually-hidden')) continue;
      const rect = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      if (rect.width === 0 || rect.height === 0 || style.visibility === 'hidden') continue;
      if (rect.width < 47.5 || rect.height < 47.5) {
        bad.push(`${el.tagName.toLowerCase()}[${el.getAttribute('data-testid') ?? el.textContent?.trim().slice(0, 20)}] ${Math.round(rect.width)}x${Math.round(rect.height)}`);
      }
    }
    return bad;
  });
}
