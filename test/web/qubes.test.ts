// The Qubes page in a real browser against a real daemon: the table (label, class, state, netvm,
// addresses, rules status, detached), start and stop from the page checked with the CLI and with real
// packets, a netvm's refusal to stop with running clients and its forced variant, the netvm select,
// and the topology graph (elkjs under the CSP: a refusal would log a console error and fail here)
// whose edges are links to their traces, by mouse and by keyboard.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserUnavailable, withManager, type Manager } from './harness.js';
import { until } from '../kernel/system.js';

const WEB = '203.0.113.10'; // a world address work may reach (its rules accept all)
const PORT = 8000;

/** A new TCP connection from `qube` to the world's echo server: 'ok', an error, or why it could not run. */
async function reach(m: Manager, qube: string): Promise<string> {
  try {
    return (await m.s.tcpProbe(qube, WEB, PORT, { timeoutMs: 1500 })).result;
  } catch (e) {
    return `not run: ${(e as Error).message.split('\n')[0]}`;
  }
}

const lsState = async (m: Manager, qube: string) => new RegExp(`^${qube} +(\\w+)`, 'm').exec(await m.s.ok('ls'))?.[1];
const row = (page: Page, qube: string) => page.locator(`tr[data-qube="${qube}"]`);
const cell = (page: Page, qube: string, col: string) => row(page, qube).locator(`td[data-col="${col}"]`);

/** Wait until a qube's state cell says `text` (the page follows the daemon's events, no reload). */
const stateIs = (page: Page, qube: string, re: RegExp) => cell(page, qube, 'state').filter({ hasText: re }).waitFor();

const why = browserUnavailable();
if (why) test('web qubes page', { skip: why }, () => {});
else {
  test('qubes page: table, stop and start with real traffic, refusal and force, netvm select', async () => {
    await withManager('qq', ['init', 'features sys-net ipv6 1', 'create fw2 --provides-network --netvm sys-net --label green', 'start work personal'], async (m) => {
      await m.s.echoServer('world', WEB, PORT);
      assert.equal(await reach(m, 'work'), 'ok', 'work reaches the world before anything');
      const held = await m.s.holdTcp('work', WEB, PORT);
      assert.ok(await held.send());

      const page = await m.open('editor');
      await row(page, 'work').waitFor();
      const text = (await row(page, 'work').textContent()) ?? '';
      assert.match(text, /AppVM/);
      assert.match(text, /Running/);
      assert.match(text, /10\.137\.0\.\d+/);
      assert.match(text, /fd09:24ef:4179::a89:\d+/, 'IPv6 shown where set');
      assert.match(await cell(page, 'work', 'rules').textContent() ?? '', /applied/);
      assert.equal(await row(page, 'work').locator('.label-blue').count(), 1, 'label colour');
      assert.match((await row(page, 'vault').textContent()) ?? '', /Halted/);

      // A netvm with running clients refuses to stop: the daemon's diagnostic, and the forced variant.
      await row(page, 'sys-firewall').getByRole('button', { name: 'stop sys-firewall' }).click();
      const refusal = page.locator('tr[data-result-of="sys-firewall"]');
      await refusal.locator('[data-code="QNET2101"]').waitFor();
      assert.match((await refusal.textContent()) ?? '', /work/);
      assert.equal(await lsState(m, 'sys-firewall'), 'Running', 'refused: still running');
      await refusal.getByRole('button', { name: /Stop sys-firewall anyway/ }).click();
      await stateIs(page, 'sys-firewall', /Halted/);
      assert.equal(await lsState(m, 'sys-firewall'), 'Halted');
      await cell(page, 'work', 'state').locator('.detached').waitFor();
      assert.notEqual(await reach(m, 'work'), 'ok', 'detached: work reaches nothing');
      await row(page, 'sys-firewall').getByRole('button', { name: 'start sys-firewall' }).click();
      await stateIs(page, 'sys-firewall', /Running/);
      assert.equal(await cell(page, 'work', 'state').locator('.detached').count(), 0, 'reattached');
      assert.ok(await until(async () => (await reach(m, 'work')) === 'ok', 5000, 200), 'traffic flows again after reattach');

      // Stop work from the page: Halted for the CLI, and its traffic stops.
      await row(page, 'work').getByRole('button', { name: 'stop work' }).click();
      await stateIs(page, 'work', /Halted/);
      assert.equal(await lsState(m, 'work'), 'Halted');
      assert.equal(await held.send(2000), false, 'the held connection carries nothing');
      assert.notEqual(await reach(m, 'work'), 'ok', 'no new connection from a halted qube');
      await row(page, 'work').getByRole('button', { name: 'start work' }).click();
      await stateIs(page, 'work', /Running/);
      assert.equal(await lsState(m, 'work'), 'Running');
      assert.ok(await until(async () => (await reach(m, 'work')) === 'ok', 5000, 200), 'work reaches the world again');

      // The netvm select: qubes that provide network, none and default; the CLI sees each change.
      const select = page.getByLabel('netvm of work');
      const offered = await select.locator('option').allTextContents();
      assert.deepEqual(offered, ['default (sys-firewall)', 'none', 'fw2', 'sys-firewall', 'sys-net']);
      await select.selectOption('sys-net');
      await until(async () => (await m.s.ok('prefs work netvm')).trim() === 'sys-net', 5000, 100);
      assert.equal((await m.s.ok('prefs work netvm')).trim(), 'sys-net');
      await page.locator('tr[data-qube="work"] td.mono').filter({ hasText: /^10\.137\.0\.1$/ }).waitFor(); // gateway: sys-net
      // A running qube cannot move to a halted netvm: refused, said, and the select shows what holds.
      await select.selectOption('fw2');
      await page.locator('tr[data-result-of="work"] [data-code="QNET2017"]').waitFor();
      assert.equal(await select.inputValue(), 'sys-net');
      assert.equal((await m.s.ok('prefs work netvm')).trim(), 'sys-net');
      await select.selectOption('(default)');
      await until(async () => (await m.s.ok('prefs work netvm')).trim() === 'sys-firewall', 5000, 100);
      assert.equal((await m.s.ok('prefs work netvm')).trim(), 'sys-firewall');
      assert.ok(await until(async () => (await reach(m, 'work')) === 'ok', 5000, 200), 'back on sys-firewall, traffic flows');

      await m.screenshot(page, 'qubes-desktop');
      // The viewer sees the same table and no control that changes anything.
      const viewer = await m.open('viewer', { viewport: { width: 390, height: 800 } });
      await row(viewer, 'work').waitFor();
      assert.equal(await viewer.locator('main button, main select').count(), 0, 'no mutating control for the viewer');
      assert.match((await row(viewer, 'work').textContent()) ?? '', /sys-firewall/);
      await viewer.locator('svg.topology [data-node="work"]').waitFor();
      await m.screenshot(viewer, 'qubes-narrow');
    });
  });

  test('topology: a node per qube, netvm, connection and forward edges, each a link to its trace (mouse and keyboard)', async () => {
    await withManager('qt', ['init', 'connect work personal --proto tcp --port 443', 'connect untrusted personal --both-ways', 'forward add work --proto tcp --port 8080 --to-port 8000', 'start work'], async (m) => {
      // elkjs under the CSP: the page collects every CSP violation from its first script on.
      const ctx = await m.browser.newContext();
      await ctx.addInitScript(() => {
        const seen: string[] = ((window as unknown as { cspViolations: string[] }).cspViolations = []);
        document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      const probe = await ctx.newPage();
      const doc = await probe.goto(`${m.base}/#token=${m.tokens.viewer}`);
      const csp = (await doc?.headerValue('content-security-policy')) ?? '';
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.doesNotMatch(csp, /unsafe-eval|worker-src|blob:/);
      await probe.locator('svg.topology[data-ready="yes"] [data-node="work"]').waitFor();
      const violations = () => probe.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations);
      assert.deepEqual(await violations(), [], 'the layout ran without tripping the CSP');
      // The watch sees what the policy refuses (so the empty list above means something): an inline script.
      const ran = await probe.evaluate(() => {
        const el = document.createElement('script');
        el.textContent = 'window.inlineRan = true';
        document.head.append(el);
        return (window as unknown as { inlineRan?: boolean }).inlineRan === true;
      });
      assert.equal(ran, false);
      await until(async () => (await violations()).length > 0, 2000, 50);
      assert.match((await violations()).join('\n'), /^script-src/);
      await ctx.close();

      const page = await m.open('editor', { colorScheme: 'dark' });
      const svg = page.locator('svg.topology[data-ready="yes"]');
      await svg.waitFor();
      const qubes = (JSON.parse(await m.s.ok('ls --json')) as { name: string }[]).map((q) => q.name);
      for (const q of [...qubes, 'outside']) assert.equal(await svg.locator(`[data-node="${q}"]`).count(), 1, `a node for ${q}`);
      for (const e of ['netvm:work', 'netvm:sys-firewall', 'netvm:personal', 'connection:c1', 'forward:f1'])
        assert.equal(await svg.locator(`a[data-edge="${e}"]`).count(), 1, `an edge ${e}`);
      assert.equal(await svg.locator('[data-edge^="netvm:vault"]').count(), 0, 'vault has no netvm');
      assert.match((await svg.locator('a[data-edge="connection:c1"]').textContent()) ?? '', /tcp\/443/);
      // Every edge is drawn with a real path.
      const d = await svg.locator('a[data-edge="forward:f1"] path.line').getAttribute('d');
      assert.match(d ?? '', /^M[\d.]+ [\d.]+ L/);
      await m.screenshot(page, 'qubes-dark');

      // Both ways: an arrow at each end; one way: at the end only.
      assert.ok(await svg.locator('a[data-edge="connection:c2"] path.line').getAttribute('marker-start'));
      assert.equal(await svg.locator('a[data-edge="connection:c1"] path.line').getAttribute('marker-start'), null);
      // A CLI change shows in the picture without a reload.
      await m.s.ok('connect personal work --proto udp --port 53');
      await svg.locator('a[data-edge="connection:c3"]').filter({ hasText: 'udp/53' }).waitFor();

      // Click: the connection's trace.
      await svg.locator('a[data-edge="connection:c1"] path.hit').click({ force: true });
      await page.waitForURL(/#\/explain\?/);
      assert.match(page.url(), /#\/explain\?src=work&dst=personal&proto=tcp&port=443$/);
      await page.goBack();
      await svg.waitFor();
      // Keyboard: Tab reaches the edges; Enter on the forward's edge follows it.
      let found = false;
      for (let i = 0; i < 80 && !found; i++) {
        await page.keyboard.press('Tab');
        found = await page.evaluate(() => document.activeElement?.getAttribute('data-edge') === 'forward:f1');
      }
      assert.ok(found, 'Tab reaches the forward edge');
      await page.keyboard.press('Enter');
      await page.waitForURL(/#\/explain\?src=outside/);
      assert.match(page.url(), /#\/explain\?src=outside&dst=work&proto=tcp&port=8080$/);
      await page.goBack();
      await svg.locator('a[data-edge="netvm:work"] path.hit').click({ force: true });
      await page.waitForURL(/#\/explain\?/);
      assert.match(page.url(), /#\/explain\?src=work&dst=sys-firewall$/);
    });
  });
}
