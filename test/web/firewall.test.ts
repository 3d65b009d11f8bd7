// The firewall editor in a real browser against a real daemon and real namespaces: a rule added on
// the page refuses a real packet from work and deleting it lets it through again; reorder by
// keyboard and by drag changes the order the CLI lists; shadowed rules, implicit rows and name
// answers are shown; a CLI edit shows without reload; a stale edit is refused with QNET1905 and
// the draft is kept; every validation message of the rule parser is shown at its field; expiry
// counts down and the row goes; the viewer has no mutating control and its writes are refused;
// and a 100k-rule list: first screen, whole list, filter and an edit, timed.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserUnavailable, withManager, type Manager } from './harness.js';
import { realisticRules } from '../../bench/support.js';
import { formatApiRule } from '../../src/model/rule-format.js';

const WEB = '203.0.113.10';
const RULES = [
  'action=accept specialtarget=dns',
  'action=accept dsthost=web.example.com proto=tcp dstports=80',
  'action=accept proto=tcp',
  'action=accept proto=tcp dstports=443 comment=never-matches',
];

const row = (page: Page, no: number) => page.locator(`.vlist [role="row"][data-no="${no}"]`);
const get = async (m: Manager) => (await m.s.ok('firewall work get')).trim().split('\n');
const probe = async (m: Manager) => (await m.s.tcpProbe('work', WEB, 80, { timeoutMs: 1500 })).result;

/** Until `fn` holds (the daemon answers asynchronously), or fail with `what` and what `seen` says. */
async function until(what: string, fn: () => Promise<boolean>, ms = 10_000, seen?: () => Promise<unknown>): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out: ${what}${seen ? `; seen: ${JSON.stringify(await seen())}` : ''}`);
}

async function openForm(page: Page, which: 'add' | number): Promise<void> {
  if (which === 'add') await page.getByRole('button', { name: 'Add rule' }).click();
  else await page.getByRole('button', { name: `edit rule ${which}`, exact: true }).click();
  await page.locator('form.rule-form').waitFor();
}

const why = browserUnavailable();
if (why) test('web firewall editor', { skip: why }, () => {});
else {
  test('firewall editor: add/delete with real packets, reorder, shadows, implicit rows, live CLI edits, stale edits, validation, expiry, viewer', async () => {
    await withManager('qf', ['init', 'start work'], async (m) => {
      await m.s.ok('firewall work set', RULES.join('\n') + '\n');
      const page = await m.open('editor', { path: '#/firewall' });
      // No qube: a list to choose from.
      await page.locator('.fw-picker a', { hasText: 'work' }).click();
      await row(page, 3).waitFor();
      assert.match(page.url(), /#\/firewall\/work$/);

      // The implicit parts, from the op's value, as read-only rows around the rules.
      for (const part of ['antispoof', 'dns-dnat', 'icmp-from-clients', 'replies', 'policy', 'no-new-flows-to-clients']) await page.locator(`.fw-implicit [data-part="${part}"]`).waitFor();
      assert.match((await page.locator('[data-part="dns-dnat"]').textContent()) ?? '', /10\.139\.1\.1, 10\.139\.1\.2/);
      assert.equal(await page.locator('.fw-implicit button').count(), 0, 'implicit rows have no controls');
      // The shadowed rule, said with its code; the other rules are not.
      assert.match((await row(page, 3).locator('.shadow').textContent()) ?? '', /QNET1906 rule 3 never matches: rule 2 covers it/);
      assert.equal(await page.locator('.vlist .shadow').count(), 1);
      await m.screenshot(page, 'firewall-shadow');
      // The name rule: what it resolved to and when it is asked again.
      const nameRow = async () => (await row(page, 1).textContent()) ?? '';
      await until('the name shows its answer', async () => /web\.example\.com → 203\.0\.113\.10, 2001:db8::10 · refresh in \d+:\d\d/.test(await nameRow()), 10_000, nameRow);

      // Add a drop rule from the page: the CLI lists it and a real packet is refused.
      assert.equal(await probe(m), 'ok', 'allowed before');
      await openForm(page, 'add');
      await page.locator('#rf-action').selectOption('drop');
      await page.locator('#rf-dst').fill(WEB);
      await page.locator('#rf-proto').selectOption('tcp');
      await page.locator('#rf-ports').fill('80');
      await page.locator('#rf-before').fill('0');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await until('the page shows the new rule 0', async () => /drop/.test((await row(page, 0).textContent()) ?? ''));
      assert.equal((await get(m))[0], `action=drop dst4=${WEB}/32 proto=tcp dstports=80-80`);
      assert.equal(await probe(m), 'error:EHOSTUNREACH', 'refused by the new rule');
      const editMs = Number(await page.locator('.fw-status').getAttribute('data-edit-ms'));
      assert.ok(editMs > 0 && editMs < 3000, `click to kernel ${editMs} ms`);
      console.log(JSON.stringify({ firewallEdit: { addClickToKernelReplyMs: editMs } }));

      // Delete it: allowed again.
      await page.getByRole('button', { name: 'delete rule 0', exact: true }).click();
      await until('the CLI lists the rules as before', async () => (await get(m)).join('\n') === RULES.join('\n').replace('dstports=80', 'dstports=80-80').replace('dstports=443', 'dstports=443-443'));
      assert.equal(await probe(m), 'ok', 'allowed again');

      // Reorder by keyboard: rule 3 up one (Alt+↑) — and it no longer never matches.
      await until('row 0 is dns again', async () => /dns servers/.test((await row(page, 0).textContent()) ?? ''));
      await row(page, 3).focus();
      await page.keyboard.press('Alt+ArrowUp');
      await until('the CLI order changed', async () => (await get(m))[2] === 'action=accept proto=tcp dstports=443-443 comment=never-matches');
      await until('the shadow is gone', async () => (await page.locator('.vlist .shadow').count()) === 0);
      await until('the focus followed the rule', async () => (await page.evaluate(() => document.activeElement?.getAttribute('data-no'))) === '2');
      // ↓ moves the focus only. (The reorder's live refresh may land after the key and put the
      // focus back on the moved rule: then ↓ is pressed again from there.)
      const focused = () => page.evaluate(() => document.activeElement?.getAttribute('data-no'));
      await until('↓ moved the focus to rule 3', async () => {
        if ((await focused()) === '2') await page.keyboard.press('ArrowDown');
        return (await focused()) === '3';
      });
      assert.equal((await get(m))[3], 'action=accept proto=tcp');

      // Reorder by drag: rule 0 onto rule 2.
      await row(page, 0).dragTo(row(page, 2));
      await until('the CLI order changed by drag', async () => (await get(m))[2] === 'action=accept specialtarget=dns');
      assert.equal((await get(m))[0], 'action=accept dsthost=web.example.com proto=tcp dstports=80-80');

      // A CLI edit while the page is open shows without reload.
      await m.s.ok('firewall work add accept proto=udp dstports=5000');
      await until('the CLI edit shows', async () => /5000/.test((await row(page, 4).textContent()) ?? ''));

      // A stale edit: the list changes under an open form; the draft is kept, saving is refused.
      await openForm(page, 0);
      await page.locator('#rf-comment').fill('my draft');
      await m.s.ok('firewall work add --before 0 accept proto=icmp');
      await page.getByTestId('changed-underneath').waitFor();
      assert.equal(await page.locator('#rf-comment').inputValue(), 'my draft', 'the draft is kept');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.locator('form.rule-form [data-code="QNET1905"]').waitFor();
      assert.match((await page.locator('form.rule-form [data-code="QNET1905"]').textContent()) ?? '', /rule 0 is now 'action=accept proto=icmp'.*read the rules again/);
      assert.equal((await get(m))[0], 'action=accept proto=icmp', 'nothing was written over rule 0');
      await page.getByRole('button', { name: 'Cancel' }).click();

      // Every validation message of the parser, at its field, with code, message and hint.
      await openForm(page, 'add');
      const cases: [string, Partial<Record<'dst' | 'proto' | 'ports' | 'icmptype' | 'dns' | 'expire' | 'comment', string>>, string][] = [
        ['QNET1007', { dst: 'bad_host!' }, 'dst'],
        ['QNET1008', { dst: '999.1.1.1' }, 'dst'],
        ['QNET1009', { dst: '10.0.0.0/33' }, 'dst'],
        ['QNET1010', { proto: 'tcp', ports: '99999' }, 'ports'],
        ['QNET1015', { ports: '80' }, 'ports'],
        ['QNET1011', { proto: 'icmp', icmptype: '300' }, 'icmptype'],
        ['QNET1016', { proto: 'tcp', icmptype: '8' }, 'icmptype'],
        ['QNET1017', { proto: 'icmp', dns: 'on' }, 'dns'],
        ['QNET1018', { proto: 'tcp', dns: 'on', ports: '80' }, 'ports'],
        ['QNET1013', { expire: 'soon' }, 'expire'],
        ['QNET1014', { comment: 'héllo' }, 'comment'],
        ['QNET1001', { dst: 'a b' }, ''],
      ];
      const before = await get(m);
      for (const [code, fields, at] of cases) {
        await page.locator('#rf-dst').fill(fields.dst ?? '');
        await page.locator('#rf-proto').selectOption(fields.proto ?? '');
        await page.locator('#rf-ports').fill(fields.ports ?? '');
        await page.locator('#rf-icmptype').fill(fields.icmptype ?? '');
        await page.locator('#rf-dns').setChecked(fields.dns === 'on');
        await page.locator('#rf-expire').fill(fields.expire ?? '');
        await page.locator('#rf-comment').fill(fields.comment ?? '');
        await page.getByRole('button', { name: 'Add', exact: true }).click();
        const where = at ? `form.rule-form [data-field="${at}"]` : 'form.rule-form > .problems';
        const shown = page.locator(`${where} [data-code="${code}"]`);
        await shown.waitFor();
        assert.ok(((await shown.textContent()) ?? '').length > code.length + 5, `${code} has its message`);
        if (at) assert.equal(await page.locator(`#rf-${at}`).getAttribute('aria-invalid'), 'true', `${code} marks its field`);
      }
      assert.deepEqual(await get(m), before, 'no refused rule was written');
      await m.screenshot(page, 'firewall-form');
      await page.getByRole('button', { name: 'Cancel' }).click();

      // An expiring rule counts down, and goes when the daemon expires it.
      await m.s.ok(['firewall', 'work', 'add', 'accept', 'proto=udp', 'dstports=7000', 'expire=+4']);
      const exp = page.locator('.vlist [role="row"]', { hasText: '7000' });
      await exp.locator('.expire time').waitFor();
      const l1 = Number(await exp.locator('.expire time').getAttribute('data-left'));
      await until('it counts down', async () => Number(await exp.locator('.expire time').getAttribute('data-left')) < l1, 3000);
      await m.screenshot(page, 'firewall-desktop');
      await until('the expired rule is gone', async () => (await exp.count()) === 0, 15_000);

      // The viewer: no mutating control, and its writes are refused.
      const viewer = await m.open('viewer', { path: '#/firewall/work' });
      await row(viewer, 0).waitFor();
      assert.equal(await viewer.getByRole('button', { name: 'Add rule' }).count(), 0);
      assert.equal(await viewer.locator('.c-ops button').count(), 0);
      assert.equal(await row(viewer, 0).getAttribute('draggable'), 'false');
      await row(viewer, 1).focus();
      await viewer.keyboard.press('Alt+ArrowUp');
      const list = await get(m);
      for (const [op, input] of [
        ['firewall.add', { qube: 'work', rule: 'action=drop' }],
        ['firewall.del', { qube: 'work', ruleNo: 0 }],
        ['firewall.move', { qube: 'work', from: 1, to: 0 }],
        ['firewall.replace', { qube: 'work', ruleNo: 0, rule: 'action=drop' }],
      ] as const) {
        const r = await m.api('viewer', op, input);
        assert.equal(r.status, 403, op);
        assert.equal(r.body.diagnostics?.[0]?.code, 'QNET6110', op);
      }
      assert.deepEqual(await get(m), list, 'the viewer changed nothing');

      await page.getByLabel('theme').selectOption('dark');
      await m.screenshot(page, 'firewall-dark');
      const narrow = await m.open('viewer', { path: '#/firewall/work', viewport: { width: 390, height: 800 } });
      await row(narrow, 0).waitFor();
      await m.screenshot(narrow, 'firewall-narrow');
    });
  });

  // work is not running here: a change of its 100k rules then costs the store only. Running, the
  // compiler recompiles its whole chain for each edit (seconds for 100k rules; see the report).
  test('firewall editor with 100k rules: first screen, the whole list, a filter and an edit, timed', async () => {
    await withManager('qg', ['init'], async (m) => {
      const N = 100_000;
      const text = realisticRules(N, 11).map(formatApiRule).join('\n') + '\n';
      const set = await m.api('editor', 'firewall.set', { qube: 'work', text });
      assert.equal(set.status, 200, JSON.stringify(set.body.diagnostics));
      const page = await m.open('editor');
      // Timed in the page (its clock, from the address change to the DOM): the daemon runs in this
      // test's process, so while it builds the whole view, Playwright's answers wait for it too.
      await page.evaluate(() => {
        const w = window as unknown as { fw: { first?: number; whole?: number } };
        w.fw = {};
        new MutationObserver(() => {
          w.fw.first ??= document.querySelector('.vlist [data-no="0"]') ? performance.now() : undefined;
          w.fw.whole ??= document.querySelector('[data-testid="count"][data-complete="true"]') ? performance.now() : undefined;
        }).observe(document.body, { childList: true, subtree: true, attributes: true });
      });
      const t0 = Date.now();
      const start = await page.evaluate(() => ((location.hash = '#/firewall/work'), performance.now()));
      await row(page, 0).waitFor({ timeout: 30_000 });
      await page.locator('[data-testid="count"][data-complete="true"]').waitFor({ timeout: 60_000 });
      const wholeWall = Date.now() - t0;
      const fw = await page.evaluate(() => (window as unknown as { fw: { first: number; whole: number } }).fw);
      const first = Math.round(fw.first - start);
      const whole = Math.round(fw.whole - start);
      assert.ok((await page.locator('.vlist [role="row"]').count()) < 100, 'only the rows in view are rendered');
      assert.match((await page.getByTestId('count').textContent()) ?? '', /100000 rules/);

      // Filter by port: the count of matching rules, computed in the page.
      await page.getByLabel('search field').selectOption('port');
      const t1 = Date.now();
      await page.getByLabel('search rules').fill('443');
      await page.getByTestId('count').filter({ hasText: / of 100000 rules/ }).waitFor();
      const filterWall = Date.now() - t1;
      const filterMs = Number(await page.getByTestId('count').getAttribute('data-filter-ms'));
      assert.match((await page.locator('.vlist [role="row"]').first().locator('.c-ports').textContent()) ?? '', /^(443|\d+-\d+)$/);

      // A move of one rule in 100k (firewall.move, not a 100k-rule set): Alt+↓ on the first shown rule; the CLI sees it moved.
      const no = Number(await page.locator('.vlist [role="row"]').first().getAttribute('data-no'));
      const line = (await get(m))[no];
      await page.locator('.vlist [role="row"]').first().focus();
      const t2 = Date.now();
      await page.keyboard.press('Alt+ArrowDown');
      await page.locator('.fw-status .ok').waitFor({ timeout: 30_000 });
      const editWall = Date.now() - t2;
      const editMs = Number(await page.locator('.fw-status').getAttribute('data-edit-ms'));
      assert.equal((await get(m))[no + 1], line, 'moved one down');
      await m.screenshot(page, 'firewall-100k');
      console.log(JSON.stringify({ firewall100k: { firstScreenMs: first, wholeListMs: whole, wholeListWallMs: wholeWall, filterInPageMs: filterMs, filterWallMs: filterWall, moveClickToReplyMs: editMs, moveWallMs: editWall } }));
      // Loose bounds: this machine is shared (precise numbers: bench/firewall-editor.bench.ts, the report).
      assert.ok(first < 3000, `first screen ${first} ms`);
      assert.ok(filterMs < 1000 && filterWall < 3000, `filter ${filterMs} ms in the page, ${filterWall} ms seen`);
      assert.ok(editMs < 3000, `a move in 100k rules: ${editMs} ms to the daemon's answer`);
    });
  });
}
