// The drop log page in a real browser against a real daemon: a UDP packet work's rule refuses shows
// up grouped without a reload, a second one counts into the same row, "allow this" stages the
// accept the daemon suggests (before the deciding rule) and goes to the Changes page; applied, that
// staged step lets the same packet through (counted by the new rule). The viewer gets no button.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { browserUnavailable, withManager, type Manager } from './harness.js';
import { until } from '../kernel/system.js';

const PORT = 9999;
const ROW = `tr[data-drop="work 192.0.2.7 udp ${PORT}"]`;
const why = browserUnavailable() ?? (existsSync('/usr/bin/tcpdump') ? null : 'no tcpdump (apt-get install tcpdump; scripts/quickstart installs it)');

/** Send until the page shows the drop (the reader binds its group a moment after the daemon starts). */
async function dropShows(m: Manager, page: Page): Promise<void> {
  const row = page.locator(ROW);
  assert.ok(
    await until(async () => {
      await m.s.sendUdp('work', '192.0.2.7', PORT);
      return row.isVisible();
    }, 10_000, 500),
    'the refused packet shows without a reload',
  );
}

if (why) test('web drop log', { skip: why }, () => {});
else {
  test('drop log page: live and grouped; allow this stages the suggested accept; viewer has no button', async () => {
    await withManager('qy', ['init', 'start work', `firewall work add --before 0 drop 192.0.2.0/24 udp ${PORT}`], async (m) => {
      const page = await m.open('editor', { path: '#/log' });
      await page.getByTestId('no-drops').waitFor();
      await dropShows(m, page);
      const row = page.locator(ROW);
      assert.match((await row.textContent()) ?? '', /work rule 0.*action=drop dst4=192\.0\.2\.0\/24 proto=udp dstports=9999-9999.*sys-firewall/);
      const count = Number(await row.getByTestId('count').textContent());
      await m.s.sendUdp('work', '192.0.2.7', PORT);
      await page.waitForFunction(([sel, n]) => Number(document.querySelector(`${sel} [data-testid="count"]`)?.textContent) > n, [ROW, count] as const);
      assert.equal(await page.locator('tr[data-drop]').count(), 1, 'one group for one qube, destination and port');
      await m.screenshot(page, 'log-desktop');

      // The viewer sees the drops, and no way to change anything.
      const viewer = await m.open('viewer', { path: '#/log' });
      await viewer.locator(ROW).waitFor();
      assert.equal(await viewer.getByRole('button', { name: 'Allow this' }).count(), 0);

      const narrow = await m.open('editor', { path: '#/log', viewport: { width: 390, height: 800 } });
      await narrow.locator(ROW).waitFor();
      await m.screenshot(narrow, 'log-narrow');
      const dark = await m.open('editor', { path: '#/log', colorScheme: 'dark' });
      await dark.locator(ROW).waitFor();
      await m.screenshot(dark, 'log-dark');

      // Allow this: staged for preview, and off to the Changes page.
      await row.getByRole('button', { name: 'Allow this' }).click();
      await page.waitForFunction(() => location.hash === '#/changes');
      const staged = JSON.parse((await page.evaluate(() => sessionStorage.getItem('qnet-staged'))) ?? '[]') as { name: string; input: { qube: string; rule: string; before?: number }; label: string }[];
      assert.equal(staged.length, 1);
      assert.deepEqual({ name: staged[0]!.name, input: staged[0]!.input }, { name: 'firewall.add', input: { qube: 'work', rule: `action=accept dst4=192.0.2.7 proto=udp dstports=${PORT}-${PORT}`, before: 0 } });
      assert.match(staged[0]!.label ?? '', /work → 192\.0\.2\.7:9999\/udp/);

      // The staged step is a change the daemon takes, and it lets exactly that traffic through.
      const r = await m.api('editor', staged[0]!.name, staged[0]!.input);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.match(await m.s.ok('firewall work list'), /0\s+accept\s+192\.0\.2\.7\/32\s+udp\s+9999[\s\S]*1\s+drop/);
      await m.s.sendUdp('work', '192.0.2.7', PORT, 3);
      const accepted = (await m.s.counters('work')).find((c) => c.rule === 'work rule 0' && c.hop === 'sys-firewall');
      assert.equal(accepted?.packets, 3, 'the new accept (before the drop) counted the packets');
    });
  });
}
