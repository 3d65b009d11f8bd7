// The Changes page in a real browser against a real daemon and real namespaces: stage an edit (kept
// over a reload), preview it (work's rule diff; work loses the outside's web server), apply with a
// short confirm time and watch the countdown, let it roll back (the kernel lets traffic through
// again: packets and the CLI), apply and confirm (it stays), undo (gone), a batch with a bad step
// is refused and changes nothing, a bad confirm time is refused; a viewer sees the history and no
// control, and the API refuses its apply (403). Screenshots: desktop, narrow, dark.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserUnavailable, withManager } from './harness.js';
import { until } from '../kernel/system.js';

const WEB = '203.0.113.10';
const DROP = 'action=drop dst4=203.0.113.10/32 proto=tcp dstports=80-80';

const why = browserUnavailable();
if (why) test('web changes', { skip: why }, () => {});
else {
  test('changes: stage, preview, apply with a countdown, roll back, confirm, undo, refusals, viewer', async () => {
    await withManager('qg', ['init', 'start work'], async (m) => {
      const probe = async () => (await m.s.tcpProbe('work', WEB, 80, { timeoutMs: 1500 })).result;
      const list = () => m.s.ok('firewall work list');
      const before = await list();
      assert.equal(await probe(), 'ok');

      const page = await m.open('editor', { path: '#/changes' });
      await stageDrop(page);
      // A reload keeps the staged edit (sessionStorage).
      await page.reload();
      await page.getByTestId('staged').first().waitFor();
      assert.equal(await page.getByTestId('staged').count(), 1);
      // The preview: work's rule diff, and work loses the outside's web server on tcp/80.
      const preview = page.getByTestId('preview');
      await preview.locator('.rules-diff[data-qube="work"] .diff-add').filter({ hasText: DROP }).waitFor();
      assert.match((await page.getByTestId('losses').textContent()) ?? '', /work.*outside \(203\.0\.113\.10\) tcp\/80/);
      await m.screenshot(page, 'changes-preview');

      // Apply with 3 s to confirm; do nothing: the countdown shows, then it rolls back.
      await page.locator('input[name="confirmWithin"]').fill('3');
      await page.getByRole('button', { name: /^Apply 1 edit$/ }).click();
      const banner = page.getByTestId('pending');
      await banner.waitFor();
      assert.match((await banner.getByTestId('countdown').textContent()) ?? '', /^Confirm or this rolls back in 0:0[0-3]$/);
      await page.getByTestId('staged').first().waitFor({ state: 'detached' }); // applied edits leave the staging list
      assert.equal(await probe(), 'error:EHOSTUNREACH', 'the kernel blocks while the apply stands');
      assert.notEqual(await list(), before);
      await m.screenshot(page, 'changes-pending');
      await banner.waitFor({ state: 'detached', timeout: 10_000 });
      assert.ok(await until(async () => (await probe()) === 'ok', 5000, 200), 'rolled back: traffic flows again');
      assert.equal(await list(), before, 'rolled back: the rules are as before');
      await page.locator('tr[data-checkpoint="cp1"] [data-testid="state"]').filter({ hasText: 'rolled-back' }).waitFor();

      // Apply and confirm: it stays past its time.
      await stageDrop(page);
      await page.locator('input[name="confirmWithin"]').fill('3');
      await page.getByRole('button', { name: /^Apply 1 edit$/ }).click();
      await banner.waitFor();
      await banner.getByRole('button', { name: 'Confirm' }).click();
      await banner.waitFor({ state: 'detached' });
      await page.locator('tr[data-checkpoint="cp2"] [data-testid="state"]').filter({ hasText: 'confirmed' }).waitFor();
      await new Promise((r) => setTimeout(r, 3500));
      assert.equal(await probe(), 'error:EHOSTUNREACH', 'confirmed: still blocked after its time');

      // A later change to the same rules: undo is not offered, and the page says why.
      await m.s.ok('firewall work add --before 0 drop 203.0.113.20 tcp 81');
      await page.locator('tr[data-checkpoint="cp2"]').filter({ hasText: 'the rules of work changed since' }).waitFor();
      assert.equal(await page.locator('tr[data-checkpoint="cp2"] button').count(), 0);
      await m.s.ok('firewall work del --rule-no 0');
      // Undo: back as before.
      await page.locator('tr[data-checkpoint="cp2"]').getByRole('button', { name: 'Undo' }).click();
      await page.locator('tr[data-checkpoint="cp2"] [data-testid="state"]').filter({ hasText: 'undone' }).waitFor();
      assert.equal(await probe(), 'ok');
      assert.equal(await list(), before);

      // Roll back now, from the banner.
      await stageDrop(page);
      await page.getByRole('button', { name: /^Apply 1 edit$/ }).click();
      await banner.waitFor();
      await banner.getByRole('button', { name: 'Roll back now' }).click();
      await page.locator('tr[data-checkpoint="cp3"] [data-testid="state"]').filter({ hasText: 'rolled-back' }).waitFor();
      assert.equal(await list(), before);

      // A bad step: the preview says why, the apply is refused, nothing changes.
      await stageDrop(page);
      await page.locator('input[name="rule"]').fill('action=maybe');
      await page.getByRole('button', { name: 'Stage', exact: true }).click();
      await page.getByTestId('staged').nth(1).waitFor();
      await page.locator('.staging [data-code="QNET1005"]').first().waitFor();
      await page.getByRole('button', { name: /^Apply 2 edits$/ }).click();
      await page.getByTestId('outcome').locator('[data-code="QNET1005"]').waitFor();
      assert.match((await page.getByTestId('outcome').textContent()) ?? '', /step 2 \(firewall\.add\)/);
      assert.equal(await list(), before);
      assert.equal(await probe(), 'ok');
      // Remove the bad step; a confirm time that is not a number is refused with the op's words.
      await page.getByRole('button', { name: /^remove staged edit 2/ }).click();
      assert.equal(await page.getByTestId('staged').count(), 1);
      await page.locator('input[name="confirmWithin"]').fill('-5');
      await page.getByRole('button', { name: /^Apply 1 edit$/ }).click();
      await page.getByTestId('outcome').locator('[data-code="QNET6102"]').filter({ hasText: /confirmWithin/ }).waitFor();
      assert.equal(await list(), before);
      // The form's own check.
      await page.locator('input[name="rule"]').fill('');
      await page.getByRole('button', { name: 'Stage', exact: true }).click();
      await page.locator('#stage-error').waitFor();
      await m.screenshot(page, 'changes-desktop');

      // A viewer: the history, no control; its apply is refused by the API.
      await m.s.ok('firewall work add --before 0 drop 203.0.113.20 tcp 81'); // a change made elsewhere: history stays readable
      const viewer = await m.open('viewer', { path: '#/changes', viewport: { width: 390, height: 800 } });
      await viewer.locator('tr[data-checkpoint="cp3"]').waitFor();
      assert.equal(await viewer.locator('main button, main input, main select').count(), 0, 'a viewer has no control on this page');
      await m.screenshot(viewer, 'changes-narrow');
      const refused = await m.api('viewer', 'apply', { ops: [{ name: 'firewall.add', input: { qube: 'work', rule: DROP } }], confirmWithin: 0 });
      assert.equal(refused.status, 403);
      assert.equal(refused.body.diagnostics?.[0]?.code, 'QNET6110');
      const dark = await m.open('editor', { path: '#/changes', colorScheme: 'dark' });
      await dark.locator('tr[data-checkpoint="cp3"]').waitFor();
      assert.equal(await dark.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(20, 23, 27)');
      await m.screenshot(dark, 'changes-dark');
    });
  });
}

/** Stage the blocking rule with the page's own form. */
async function stageDrop(page: Page): Promise<void> {
  const n = await page.getByTestId('staged').count();
  await page.locator('select[name="qube"]').selectOption('work');
  await page.locator('input[name="rule"]').fill(DROP);
  await page.getByRole('button', { name: 'Stage', exact: true }).click();
  await page.getByTestId('staged').nth(n).waitFor();
}
