// qnet nft / check / matrix / diff on the reference's example policy (§6), offline: names come from
// the stand-in world's zone (web.example.com = 203.0.113.10, other.example.com = 203.0.113.20).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { StateDir } from './helpers.js';

describe('explaining a policy', () => {
  const s = new StateDir();
  before(async () => {
    await s.ok('init');
    await s.ok('firewall work set', 'action=accept specialtarget=dns\naction=accept dsthost=web.example.com proto=tcp dstports=443\n');
  });
  after(() => s.cleanup());

  test('nft prints the Qubes layout the netvm runs, with one dispatch map and the client chain', async () => {
    const out = await s.ok('nft sys-firewall');
    assert.match(out, /add chain ip qubes custom-forward\n/);
    assert.match(out, /add rule ip qubes-firewall forward ip saddr vmap @dispatch/);
    assert.match(out, /10\.137\.0\.3 comment "work" : jump qbs-10-137-0-3/);
    assert.match(out, /reject with icmp type admin-prohibited comment "qube=work policy"/);
    const j = JSON.parse(await s.ok('nft sys-firewall --json'));
    assert.ok(Array.isArray(j.nftables));
  });

  test('check: allowed by name, refused elsewhere, with the deciding rule', async () => {
    const ok = await s.ok('check work web.example.com:443');
    assert.match(ok, /^work → 203\.0\.113\.10 tcp\/443: ACCEPT/);
    const no = await s.ok('check work other.example.com:443');
    assert.match(no, /REJECT \(icmp admin-prohibited\).*policy: work default drop/);
    const r = JSON.parse(await s.ok('check work 203.0.113.10:80 --json'));
    assert.equal(r.verdict, 'reject');
    const dns = JSON.parse(await s.ok('check work 10.139.1.1:53 --proto udp --json'));
    assert.equal(dns.verdict, 'accept');
  });

  test('check: qubes cannot reach each other; a spoofed source is dropped; the vault has no network', async () => {
    assert.equal(JSON.parse(await s.ok('check personal work --json')).verdict, 'drop');
    const spoof = JSON.parse(await s.ok('check personal 203.0.113.10:80 --src-addr 10.137.0.3 --json'));
    assert.equal(spoof.verdict, 'drop');
    assert.match(spoof.reason, /antispoof|sys-firewall/);
    const vault = JSON.parse(await s.ok('check vault 203.0.113.10:80 --json'));
    assert.equal(vault.verdict, 'drop');
  });

  test('matrix: who reaches whom over icmp', async () => {
    const m = JSON.parse(await s.ok('matrix --json'));
    assert.equal(m.cells.personal.outside, 'accept');
    assert.equal(m.cells.work.outside, 'reject');
    assert.equal(m.cells.personal.work, 'drop');
    assert.equal(m.cells.outside.work, 'drop');
    assert.equal(m.cells.vault.outside, 'drop');
  });

  test('diff / --dry-run report what opens and closes and change nothing', async () => {
    const file = s.path('appvms', 'work', 'firewall.xml');
    const bytes = readFileSync(file, 'utf8');
    const out = await s.ok('diff firewall work add accept other.example.com');
    assert.match(out, /would open:\n(.*\n)*  \+ work → 203\.0\.113\.20 tcp\/443/);
    assert.equal(readFileSync(file, 'utf8'), bytes);
    const closed = await s.ok('--dry-run firewall work del --rule-no 0');
    assert.match(closed, /would close:\n(.*\n)*  - work → 10\.139\.1\.1 udp\/53/);
    assert.equal(readFileSync(file, 'utf8'), bytes);
  });
});
