// The resume dialog and the scan field with gloves, in a real browser against a real sidecar:
// discarding asks first and names what would be lost, then lands on the scan screen; the dialog
// offers an inspector only their own unfinished work and shows a supervisor everyone's, each
// labelled with whose it is; and the scan field holds the focus after every dialog, so a wedge
// scanner's code and Enter open the unit, without asking for the on-screen keyboard.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as h from './harness.mjs';

const TEXT = {
  ja: { you: '担当: あなた', tanaka: '担当: 田中', lost: /判定済み 1 \/ 5 項目、写真 1 枚/, targetBatch: 'ロット' },
  en: { you: 'Inspector: you', tanaka: 'Inspector: 田中', lost: /judged items: 1 of 5, photos: 1\./, targetBatch: 'lot' },
};

let sidecar;
let fixtures;

before(async () => {
  const seeded = h.seed({ pipelines: false });
  fixtures = seeded.fixtures;
  sidecar = await h.startSidecar({ data: seeded.data });
  await h.launchBrowser({ fixtures });
});

after(async () => {
  await h.closeBrowser();
  await sidecar?.stop();
});

const qr = (batch) => JSON.stringify({ product_id: 'BRK-100', batch_id: batch, serial: '1' });

/** An inspection of `user`'s left open: one item judged, one photo taken. */
async function leftOpen(user, batch) {
  const api = h.apiFor(sidecar);
  const me = await api.login(user);
  const started = await api.call('POST', '/sessions', { qr_code: qr(batch) });
  const [first, second] = started.items;
  await api.call('POST', `/sessions/${started.id}/items/${first.item_id}/verification`, { final_result: 'OK', verification_time: 1 });
  const form = new FormData();
  form.append('file', new Blob([readFileSync(join(fixtures, 'photo-1.jpg'))], { type: 'image/jpeg' }), 'photo.jpg');
  const res = await fetch(`${sidecar.baseUrl}/sessions/${started.id}/items/${second.item_id}/images`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${sidecar.token}`, 'X-Kensa-Session': me.token },
    body: form,
  });
  assert.equal(res.status, 201, await res.text());
  return { id: started.id, api };
}

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
}

const focused = (page) => page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName);

/** A keyboard-wedge scanner: the code typed fast, then Enter, into whatever has the focus. */
async function wedgeScan(page, code) {
  await page.keyboard.type(code, { delay: 2 });
  await page.keyboard.press('Enter');
}

async function closeOthers(user) {
  // Earlier tests leave inspections open; each test starts with only its own.
  const api = h.apiFor(sidecar);
  await api.login('suzuki');
  for (const row of await api.call('GET', '/sessions/interrupted')) {
    if (user === null || row.username === user) {
      await api.call('POST', `/sessions/${row.id}/discard`, { signature: { password: h.PASSWORD, meaning: 'discarded' } });
    }
  }
}

for (const lang of ['ja', 'en']) {
  describe(`resume dialog and scan focus in ${lang}`, () => {
    const T = TEXT[lang];

    test(`${lang}: after "later" the scan field has the focus, asks for no keyboard, and a wedge scan opens the unit`, async () => {
      await closeOthers(null);
      await leftOpen('tanaka', `LATER-${lang}`);
      await leftOpen('suzuki', `SUZUKI-${lang}`);
      const page = await h.newPage(800);
      try {
        await logIn(page, 'tanaka', lang);
        const dialog = page.getByTestId('resume-dialog');
        await dialog.waitFor();
        // Only the inspector's own work: the supervisor's inspection is not offered.
        const rows = dialog.getByTestId('resume-item');
        assert.equal(await rows.count(), 1);
        assert.equal(await rows.first().getAttribute('data-owner'), 'tanaka');
        assert.equal(await rows.first().getByTestId('resume-owner').textContent(), T.you);
        // The scan screen behind takes no keys while the dialog is up.
        assert.equal(await page.locator('.content').evaluate((el) => el.inert), true);
        await page.getByTestId('resume-later').click();
        await dialog.waitFor({ state: 'detached' });
        const wedge = page.getByTestId('wedge');
        await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
        assert.equal(await wedge.getAttribute('inputmode'), 'none');
        const toggle = page.getByTestId('scan-type');
        assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
        assert.deepEqual(await h.smallTargets(page), []);
        await h.shot(page, `gloves-resume-${lang}-800-scan-after-later`);
        await wedgeScan(page, qr(`NEW-${lang}`));
        await page.getByTestId('target-screen').waitFor();
        assert.match(await page.getByTestId('target-screen').textContent(), new RegExp(`NEW-${lang}`));
        assert.deepEqual(page.problems, []);
      } finally {
        await page.close();
      }
    });

    test(`${lang}: "type a code" asks for the keyboard; a scan after a tap on a button still lands in the field`, async () => {
      await closeOthers(null);
      const page = await h.newPage(800);
      try {
        await logIn(page, 'tanaka', lang);
        const wedge = page.getByTestId('wedge');
        await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
        await page.getByTestId('scan-type').click();
        assert.equal(await page.getByTestId('scan-type').getAttribute('aria-pressed'), 'true');
        assert.equal(await wedge.getAttribute('inputmode'), 'text');
        await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
        await page.getByTestId('scan-type').click();
        assert.equal(await wedge.getAttribute('inputmode'), 'none');
        // The focus is on the button just tapped, and the scanner types anyway.
        await page.getByTestId('scan-type').focus();
        await wedgeScan(page, qr(`TAP-${lang}`));
        await page.getByTestId('target-screen').waitFor();
        assert.deepEqual(page.problems, []);
      } finally {
        await page.close();
      }
    });

    test(`${lang}: discard asks first with what is lost, keeps it on "no", and lands on a working scan screen`, async () => {
      await closeOthers(null);
      const { id, api } = await leftOpen('tanaka', `DISCARD-${lang}`);
      const page = await h.newPage(800);
      try {
        await logIn(page, 'tanaka', lang);
        // The screen behind shows the very inspection that is about to be discarded.
        await page.evaluate((sid) => (window.location.hash = `#/session/${sid}`), id);
        const dialog = page.getByTestId('resume-dialog');
        await dialog.waitFor();
        await dialog.getByTestId('discard').click();
        const confirm = page.getByTestId('discard-confirm');
        await confirm.waitFor();
        assert.equal(await confirm.getAttribute('role'), 'alertdialog');
        assert.match(await confirm.getByTestId('discard-what').textContent(), new RegExp(`DISCARD-${lang}`));
        assert.match(await confirm.getByTestId('discard-lost').textContent(), T.lost);
        // The safe answer has the focus: a stray Enter keeps the work.
        assert.equal(await focused(page), 'discard-keep');
        assert.deepEqual(await h.smallTargets(page), []);
        await h.shot(page, `gloves-resume-${lang}-800-discard-confirm`);
        await confirm.getByTestId('discard-keep').click();
        await confirm.waitFor({ state: 'detached' });
        assert.ok((await api.call('GET', '/sessions/interrupted')).some((r) => r.id === id), 'kept after "no"');

        await dialog.getByTestId('discard').click();
        await confirm.getByTestId('discard-confirm-yes').click();
        const signature = page.getByTestId('signature-dialog');
        await signature.waitFor();
        await signature.getByTestId('signature-password').fill(h.PASSWORD);
        await signature.getByTestId('signature-sign').click();
        await dialog.waitFor({ state: 'detached' });
        await page.getByTestId('scan-screen').waitFor();
        assert.equal(await page.evaluate(() => window.location.hash), '#/scan');
        assert.equal(await page.getByTestId('item-panel').count(), 0);
        await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
        assert.ok(!(await api.call('GET', '/sessions/interrupted')).some((r) => r.id === id), 'discarded');
        await wedgeScan(page, qr(`AFTER-${lang}`));
        await page.getByTestId('target-screen').waitFor();
        assert.deepEqual(page.problems, []);
      } finally {
        await page.close();
      }
    });

    test(`${lang}: the supervisor sees everyone's unfinished work, each labelled, their own first`, async () => {
      await closeOthers(null);
      await leftOpen('tanaka', `T-${lang}`);
      await leftOpen('suzuki', `S-${lang}`);
      const page = await h.newPage(800);
      try {
        await logIn(page, 'suzuki', lang);
        const dialog = page.getByTestId('resume-dialog');
        await dialog.waitFor();
        const rows = dialog.getByTestId('resume-item');
        assert.equal(await rows.count(), 2);
        assert.equal(await rows.nth(0).getAttribute('data-owner'), 'suzuki');
        assert.equal(await rows.nth(0).getByTestId('resume-owner').textContent(), T.you);
        assert.equal(await rows.nth(1).getAttribute('data-owner'), 'tanaka');
        // The display name, not the login name.
        assert.equal(await rows.nth(1).getByTestId('resume-owner').textContent(), T.tanaka);
        assert.equal(await rows.nth(1).getByTestId('resume').count(), 0);
        await h.shot(page, `gloves-resume-${lang}-800-supervisor`);
        await dialog.getByTestId('resume-later').click();
        await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'wedge');
        assert.deepEqual(page.problems, []);
      } finally {
        await page.close();
      }
    });
  });
}
