// The counters page in a real browser against a real daemon: work's rules at each hop, packets that
// rise after real traffic (refused UDP, counted by its drop rule) without a reload, and a "last hit"
// time for the rule that counted them; a rule nothing hit says never.
import test from 'node:test';
import assert from 'node:assert/strict';
import { browserUnavailable, withManager } from './harness.js';

const PORT = 9999;
const DROP = 'tr[data-hop="sys-firewall"][data-rule="work rule 0"]';
const why = browserUnavailable();

if (why) test('web counters', { skip: why }, () => {});
else {
  test('counters page: packets rise after real traffic, with a last-hit time; light, narrow, dark', async () => {
    await withManager('qc', ['init', 'start work', `firewall work add --before 0 drop 192.0.2.0/24 udp ${PORT}`], async (m) => {
      const page = await m.open('viewer', { path: '#/counters/work' });
      const row = page.locator(DROP);
      await row.waitFor();
      assert.equal(await row.getByTestId('packets').textContent(), '0');
      assert.equal(await row.getByTestId('last-hit').textContent(), 'never');
      const policy = page.locator('tr[data-hop="sys-firewall"][data-rule="policy: work default drop"]');
      await policy.waitFor();

      await m.s.sendUdp('work', '192.0.2.9', PORT, 5);
      // The page reads again every few seconds: the count and the time of the hit arrive without a reload.
      await page.waitForFunction((sel) => document.querySelector(`${sel} [data-testid="packets"]`)?.textContent === '5', DROP, { timeout: 10_000 });
      const hit = await row.getByTestId('last-hit').locator('time').getAttribute('datetime');
      assert.ok(hit && Math.abs(Date.now() - Date.parse(hit)) < 15_000, `a recent last hit (${hit})`);
      assert.match((await row.getByTestId('last-hit').textContent()) ?? '', /s ago/);
      // The CLI reads the same counter from the kernel.
      assert.equal((await m.s.counters('work')).find((c) => c.hop === 'sys-firewall' && c.rule === 'work rule 0')?.packets, 5);
      assert.equal(await policy.getByTestId('last-hit').textContent(), 'never');
      await m.screenshot(page, 'counters-desktop');

      const narrow = await m.open('editor', { path: '#/counters/work', viewport: { width: 390, height: 800 } });
      await narrow.locator(DROP).waitFor();
      await m.screenshot(narrow, 'counters-narrow');
      const dark = await m.open('editor', { path: '#/counters/work', colorScheme: 'dark' });
      await dark.locator(DROP).waitFor();
      await m.screenshot(dark, 'counters-dark');

      // A qube that is not running has no counters, and the page says so.
      await m.s.ok('create idle --label gray');
      const idle = await m.open('viewer', { path: '#/counters/idle' });
      await idle.getByTestId('not-running').waitFor();
    });
  });
}
