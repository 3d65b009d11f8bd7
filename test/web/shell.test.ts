// The manager's frame in a real browser: served by the daemon with a strict CSP, the token taken
// from the fragment and removed from the address bar, the role shown, a bad token refused with the
// daemon's diagnostic, live updates from a CLI change, light and dark.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { browserUnavailable, withManager } from './harness.js';

const why = browserUnavailable();
if (why) test('web shell', { skip: why }, () => {});
else {
  test('the manager: files with CSP, token out of the URL, roles, refusal, live CLI change, dark', async () => {
    await withManager('qw', ['init', 'start work'], async (m) => {
      // The page's files are served without a token, with a CSP that allows only its own origin.
      const index = await fetch(`${m.base}/`);
      assert.equal(index.status, 200);
      assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
      assert.equal((await fetch(`${m.base}/../package.json`)).status, 404);
      assert.equal((await fetch(`${m.base}/app.js.map`)).status, 200);
      assert.equal((await fetch(`${m.base}/v1/session`)).status, 401, 'the API still needs a token');

      const page = await m.open('editor');
      assert.doesNotMatch(page.url(), /token/, 'the token left the address bar');
      assert.equal(await page.getByTestId('role').textContent(), 'editor');
      await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
      const row = page.locator('tr[data-qube="work"]');
      await row.waitFor();
      assert.match((await row.textContent()) ?? '', /Running.*sys-firewall.*10\.137\.0\./);
      // Reload keeps the session (sessionStorage), not the URL.
      await page.reload();
      await page.locator('tr[data-qube="work"]').waitFor();

      // A change made with the CLI shows without a reload.
      await m.s.ok('create late --label green');
      await page.locator('tr[data-qube="late"]').waitFor();
      // An op's warnings are shown with its value: a broken rules file, made behind the daemon's back,
      // then a reload (SIGHUP), whose event makes the page read again.
      mkdirSync(join(m.s.dir, 'appvms', 'personal'), { recursive: true });
      writeFileSync(join(m.s.dir, 'appvms', 'personal', 'firewall.xml'), '<firewall version="2"><rules><rule>');
      await m.daemon.reload();
      await page.locator('.problems.warning [data-code="QNET3024"]').waitFor();

      const viewer = await m.open('viewer');
      assert.equal(await viewer.getByTestId('role').textContent(), 'viewer');

      // A wrong token: the daemon's refusal, said on the page.
      const ctx = await m.browser.newContext();
      const bad = await ctx.newPage();
      await bad.goto(`${m.base}/#token=${'0'.repeat(64)}`);
      await bad.locator('[data-code="QNET6107"]').waitFor();
      await ctx.close();

      // Keyboard: the first Tab reaches the skip link, Enter moves focus to the content.
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Skip to content');

      await page.getByLabel('theme').selectOption('dark');
      // The theme is set in an effect, after the next frame: wait for it (bounded) rather than race it.
      await page.waitForFunction(() => getComputedStyle(document.body).backgroundColor === 'rgb(20, 23, 27)', undefined, { timeout: 5000 }).catch(() => {});
      assert.equal(await page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(20, 23, 27)');
      await m.screenshot(page, 'shell-dark');
      // A dark system is followed on 'auto', and the switch's 'light' wins over it.
      const bg = (p: typeof page) => p.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const darkSystem = await m.open('viewer', { colorScheme: 'dark' });
      await darkSystem.getByLabel('theme').selectOption('auto');
      assert.equal(await bg(darkSystem), 'rgb(20, 23, 27)');
      await darkSystem.getByLabel('theme').selectOption('light');
      await darkSystem.waitForFunction(() => getComputedStyle(document.body).backgroundColor === 'rgb(255, 255, 255)', undefined, { timeout: 5000 }).catch(() => {});
      assert.equal(await bg(darkSystem), 'rgb(255, 255, 255)');
      const narrow = await m.open('viewer', { viewport: { width: 390, height: 800 } });
      await narrow.locator('tr[data-qube="work"]').waitFor();
      await m.screenshot(narrow, 'shell-narrow');
    });
  });
}
