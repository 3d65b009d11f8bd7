// The Connections, Forwards and Matrix pages in a real browser against a real daemon: a connection
// and a forward made from the page work with real packets and show in the CLI's listings; deleting
// closes them again; every validation message of the add forms is the daemon's, shown next to the
// form; a CLI change shows without a reload; per-hop counters; matrix cells link to their traces;
// the viewer gets no mutating control and the API refuses its writes.
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Locator, Page } from 'playwright-core';
import { browserUnavailable, withManager, type Manager } from './harness.js';
import { until } from '../kernel/system.js';
import { worldUplinkAddresses } from '../../src/backend/netns/world.js';

const PORT = 8000;
const WEB = '203.0.113.10';
const UPLINK = worldUplinkAddresses.v4.netvm;

const probe = async (m: Manager, from: string, host: string, port: number, localAddress?: string) =>
  (await m.s.tcpProbe(from, host, port, { timeoutMs: 1500, ...(localAddress ? { localAddress } : {}) })).result;

/** Fill the form's fields by name (text inputs and selects), submit, and wait for the request to end. */
async function submit(page: Page, form: Locator, fields: Record<string, string>): Promise<void> {
  for (const [name, value] of Object.entries(fields)) {
    const el = form.locator(`[name="${name}"]`);
    if ((await el.evaluate((e) => e.tagName)) === 'SELECT') await el.selectOption(value);
    else await el.fill(value);
  }
  const answered = page.waitForResponse((r) => r.url().includes('/v1/ops/') && r.request().method() === 'POST' && /\.add$/.test(r.url()));
  await form.getByRole('button', { name: /Connect|Forward/ }).click();
  await answered;
}

/** The form shows the daemon's refusal with this code, and its message matches. */
async function refused(form: Locator, code: string, message: RegExp): Promise<void> {
  const item = form.locator(`.problems [data-code="${code}"]`);
  await item.waitFor();
  assert.match((await item.textContent()) ?? '', message, `${code} shown with its message`);
}

const why = browserUnavailable();
if (why) test('web connections, forwards and matrix pages', { skip: why }, () => {});
else {
  test('connections page: add from the page opens real TCP, validation messages, live CLI change, counters, delete closes, viewer', async () => {
    await withManager('ql', ['init', 'start work personal'], async (m) => {
      await m.s.echoServer('personal', '0.0.0.0', PORT);
      assert.equal(await probe(m, 'work', '10.137.0.4', PORT), 'timeout', 'no connection yet: refused');

      const page = await m.open('editor', { path: '#/connections' });
      await page.getByText('No connections').waitFor();
      const form = page.locator('form[aria-label="add a connection"]');
      await submit(page, form, { from: 'work', to: 'personal', proto: 'tcp', ports: String(PORT), comment: 'from the page' });
      await page.locator('tr[data-connection="c1"]').filter({ hasText: 'active' }).waitFor();
      assert.match(await m.s.ok('connect --list'), /c1 +work → personal tcp\/8000 +active +from the page/);
      assert.equal(await probe(m, 'work', '10.137.0.4', PORT), 'ok', 'the connection made on the page carries TCP');
      assert.equal(await probe(m, 'personal', '10.137.0.3', PORT), 'timeout', 'one way only');

      // Every validation message is the daemon's, next to the form.
      await submit(page, form, { ports: 'abc' });
      await refused(form, 'QNET2201', /'abc' is not a port or port range/);
      await submit(page, form, { ports: '70000' });
      await refused(form, 'QNET2201', /'70000' is not a port/);
      await submit(page, form, { from: 'nosuch', ports: '80' });
      await refused(form, 'QNET2003', /nosuch/);
      await submit(page, form, { from: 'personal', to: 'personal' });
      await refused(form, 'QNET2201', /cannot be connected to itself/);
      await submit(page, form, { from: 'work', proto: '', ports: '80' });
      await refused(form, 'QNET2201', /ports need proto tcp or udp/);
      await submit(page, form, { proto: 'tcp', ports: String(PORT), comment: 'again' });
      await refused(form, 'QNET2202', /the same as c1/);
      await submit(page, form, { ports: '81', comment: 'caf\u00e9' });
      await refused(form, 'QNET2201', /printable ASCII/);
      await submit(page, form, { from: 'x'.repeat(65), comment: '' });
      await refused(form, 'QNET6102', /from/);
      assert.match(await m.s.ok('connect --list'), /^c1 /m);
      assert.doesNotMatch(await m.s.ok('connect --list'), /^c2 /m, 'no refused connection was stored');

      // A change made with the CLI shows without a reload.
      await m.s.ok('connect personal work --proto udp --port 53');
      await page.locator('tr[data-connection="c2"]').filter({ hasText: 'udp/53' }).waitFor();

      // Per hop, what each kernel counted for c1 (the probe above went through).
      await page.getByLabel('Packets and bytes per hop').check();
      const hops = page.locator('tr[data-connection="c1"] [data-packets]');
      await hops.first().waitFor();
      const counted = await hops.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-packets'))));
      assert.ok(counted.some((n) => n > 0), `a hop counted c1's packets: ${JSON.stringify(counted)}`);
      await m.screenshot(page, 'connections-desktop');

      // Delete from the page: gone from the CLI listing and from the kernel.
      await page.getByRole('button', { name: 'delete connection c1' }).click();
      await page.locator('tr[data-connection="c1"]').waitFor({ state: 'detached' });
      assert.doesNotMatch(await m.s.ok('connect --list'), /^c1 /m);
      assert.ok(await until(async () => (await probe(m, 'work', '10.137.0.4', PORT)) === 'timeout', 5000, 100), 'refused again');

      // The viewer: the list, no control that changes anything; the API refuses its writes.
      const viewer = await m.open('viewer', { path: '#/connections' });
      await viewer.locator('tr[data-connection="c2"]').waitFor();
      assert.equal(await viewer.locator('main form, main button').count(), 0, 'no add form, no delete');
      const r = await m.api('viewer', 'connections.add', { from: 'work', to: 'personal' });
      assert.equal(r.status, 403);
      assert.equal(r.body.diagnostics?.[0]?.code, 'QNET6110');
      assert.equal((await m.api('viewer', 'connections.del', { id: 'c2' })).status, 403);
      assert.match(await m.s.ok('connect --list'), /^c2 /m, 'still there');
    });
  });

  test('forwards page and matrix: a forward from the page reaches work from the world, inactive shown, validation, delete; matrix cells link to traces', async () => {
    await withManager('qf', ['init', 'start work'], async (m) => {
      await m.s.echoServer('work', '0.0.0.0', PORT);
      const page = await m.open('editor', { path: '#/forwards', viewport: { width: 390, height: 900 } });
      const form = page.locator('form[aria-label="add a port forward"]');
      await submit(page, form, { qube: 'work', proto: 'tcp', port: '8080', toPort: String(PORT), from: `${WEB}/32`, comment: 'web' });
      await page.locator('tr[data-forward="f1"]').filter({ hasText: 'active' }).waitFor();
      assert.match(await m.s.ok('forward list'), /f1 +sys-net tcp\/8080 → work:8000 +203\.0\.113\.10\/32 +active +web/);
      assert.ok(await until(async () => (await probe(m, 'world', UPLINK, 8080, WEB)) === 'ok', 6000, 100), 'the world reaches work through the forward');
      assert.equal(await probe(m, 'world', UPLINK, 8080, '203.0.113.20'), 'timeout', 'outside --from');

      // A forward to a halted qube is kept, shown inactive with the daemon's reason.
      await submit(page, form, { qube: 'personal', proto: 'udp', port: '5353', toPort: '', from: '', comment: '' });
      const inactive = page.locator('tr[data-forward="f2"].inactive');
      await inactive.waitFor();
      assert.match((await inactive.textContent()) ?? '', /inactive: not running: personal/);

      // Validation messages, each the daemon's.
      await submit(page, form, { qube: 'work', proto: 'tcp', port: 'abc' });
      await refused(form, 'QNET6102', /port/);
      await submit(page, form, { port: '70000' });
      await refused(form, 'QNET6102', /port/);
      await submit(page, form, { port: '9000', toPort: '0' });
      await refused(form, 'QNET6102', /toPort/);
      await submit(page, form, { qube: 'nosuch', toPort: '' });
      await refused(form, 'QNET2003', /nosuch/);
      await submit(page, form, { qube: 'work', from: 'not-an-address' });
      await refused(form, 'QNET2201', /from must be/);
      await submit(page, form, { from: '', on: 'bad/if' });
      await refused(form, 'QNET2201', /interface names/);
      await submit(page, form, { on: '', port: '8080' });
      await refused(form, 'QNET2202', /as f1 does/);
      assert.doesNotMatch(await m.s.ok('forward list'), /^f3 /m, 'nothing refused was stored');

      await page.getByLabel('Packets and bytes per hop').check();
      const atTop = page.locator('tr[data-forward="f1"] [data-hop="sys-net"] [data-packets]');
      await atTop.waitFor();
      assert.ok(Number(await atTop.getAttribute('data-packets')) > 0, "sys-net's kernel counted the world's packets for f1");
      await m.screenshot(page, 'forwards-narrow');

      await page.getByRole('button', { name: 'delete forward f2' }).click();
      await page.locator('tr[data-forward="f2"]').waitFor({ state: 'detached' });
      assert.doesNotMatch(await m.s.ok('forward list'), /^f2 /m);
      const viewer = await m.open('viewer', { path: '#/forwards' });
      await viewer.locator('tr[data-forward="f1"]').waitFor();
      assert.equal(await viewer.locator('main form, main button').count(), 0);
      assert.equal((await m.api('viewer', 'forwards.add', { qube: 'work', proto: 'tcp', port: 9999 })).status, 403);

      // The matrix: every cell a link to its trace with the same query keys.
      const mx = await m.open('viewer', { path: '#/matrix', colorScheme: 'dark' });
      const cell = (src: string, dst: string) => mx.locator(`tr[data-source="${src}"] td[data-dst="${dst}"] a`);
      await cell('work', 'personal').waitFor();
      assert.equal(await cell('work', 'personal').getAttribute('href'), '#/explain?src=work&dst=personal&proto=icmp');
      assert.equal(await cell('work', 'outside').textContent(), 'accept');
      await mx.getByLabel('Protocol').selectOption('tcp');
      await mx.getByLabel(/Port/).fill('8080');
      await mx.getByRole('button', { name: 'Show' }).click();
      await mx.waitForURL(/#\/matrix\?proto=tcp&port=8080$/);
      await mx.locator('table[aria-label="reachability for tcp/8080"]').waitFor();
      assert.equal(await cell('outside', 'work').getAttribute('href'), '#/explain?src=outside&dst=work&proto=tcp&port=8080');
      assert.equal(await cell('outside', 'work').textContent(), 'accept', 'the forward opens work to the outside on 8080');
      await m.screenshot(mx, 'matrix-dark');
      await mx.evaluate(() => (location.hash = '#/matrix?proto=tcp&port=9999'));
      await mx.locator('table[aria-label="reachability for tcp/9999"]').waitFor();
      assert.equal(await cell('outside', 'work').textContent(), 'drop', 'no forward on 9999');
      await mx.goBack();
      await mx.locator('table[aria-label="reachability for tcp/8080"]').waitFor();
      assert.equal(await mx.getByLabel(/Port/).inputValue(), '8080', 'the form follows the address');
      await cell('outside', 'work').click();
      await mx.waitForURL(/#\/explain\?src=outside&dst=work&proto=tcp&port=8080$/);
      // A bad port in the address: the daemon's refusal, on the page.
      await mx.evaluate(() => (location.hash = '#/matrix?proto=tcp&port=abc'));
      await mx.locator('[data-code="QNET6102"]').waitFor();
    });
  });
}
