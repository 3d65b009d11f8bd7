// `qnet export qubes` against namespaces shaped like Qubes (issue 10 item 5): qnet starts the qubes
// with the netns backend (vif*/eth0, interface groups, Qubes addresses), then each namespace's rules
// are REPLACED by the real Qubes base ruleset (fixture qubes-os/qubes-ipv4.nft) and the exported
// scripts are run in it twice. Real packets must meet the same fate as under qnet's own rules, and
// the second run must change nothing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelUnavailable } from './ns.js';
import { withLiveSystem, type LiveSystem } from './system.js';
import { worldUplinkAddresses } from '../../src/backend/netns/world.js';
import type { ExportFile } from '../../src/ops/export.js';

const ROOT = new URL('../../../', import.meta.url); // dist/test/kernel → the worktree
const BASE = readFileSync(new URL('test/fixtures/qubes-os/qubes-ipv4.nft', ROOT), 'utf8');
const WEB = '203.0.113.10'; // inside --from
const OTHER = '203.0.113.20'; // outside --from
const UPLINK = worldUplinkAddresses.v4.netvm;
const QUBES = ['sys-net', 'sys-firewall', 'work', 'personal'];
const ip = (qid: number) => `10.137.0.${qid}`;

/** Every probe the test makes, by name → result ('ok', 'timeout', 'error:…'). */
async function probes(s: LiveSystem): Promise<Record<string, string>> {
  const p = async (from: string, host: string, port: number, local?: string) =>
    (await s.tcpProbe(from, host, port, { timeoutMs: 1500, ...(local ? { localAddress: local } : {}) })).result;
  return {
    'work → personal:22': await p('work', ip(4), 22),
    'work → personal:23': await p('work', ip(4), 23),
    'personal → work:22': await p('personal', ip(3), 22),
    'world(web) → sys-net:8080': await p('world', UPLINK, 8080, WEB),
    'world(other) → sys-net:8080': await p('world', UPLINK, 8080, OTHER),
    'world(web) → sys-net:8000': await p('world', UPLINK, 8000, WEB),
  };
}

const ruleset = async (s: LiveSystem, q: string) => (await s.sh(q, ['nft', '-s', 'list', 'ruleset'])).stdout;

const why = kernelUnavailable();
if (why) test('kernel export to Qubes scripts', { skip: why }, () => {});
else
  test('exported nft scripts in Qubes-shaped namespaces: same reachability as qnet, second run changes nothing', async () => {
    await withLiveSystem('qx', async (s) => {
      const dir = mkdtempSync(join(tmpdir(), 'qnet-export-'));
      try {
        await s.ok('init');
        await s.ok('connect work personal --proto tcp --port 22');
        await s.ok(`forward add work --proto tcp --port 8080 --to-port 8000 --from ${WEB}/32`);
        await s.ok('start work personal');
        await s.echoServer('personal', '0.0.0.0', 22);
        await s.echoServer('personal', '0.0.0.0', 23);
        await s.echoServer('work', '0.0.0.0', 22);
        await s.echoServer('work', '0.0.0.0', 8000);
        const underQnet = await probes(s);
        assert.deepEqual(underQnet, {
          'work → personal:22': 'ok',
          'work → personal:23': 'timeout',
          'personal → work:22': 'timeout',
          'world(web) → sys-net:8080': 'ok',
          'world(other) → sys-net:8080': 'timeout',
          'world(web) → sys-net:8000': 'timeout',
        });

        const files = JSON.parse(await s.ok('export qubes --json')) as ExportFile[];
        assert.deepEqual(files.map((f) => `${f.qube}/${f.path}`).sort(), [
          'personal/rc.local', 'sys-firewall/qubes-firewall-user-script', 'sys-net/qubes-firewall-user-script', 'work/rc.local',
        ]);
        // Qubes, not qnet: the base ruleset alone, then the scripts.
        for (const q of QUBES) {
          const r = await s.runner.run(['nft', '-f', '-'], { netns: s.ns(q), stdin: `flush ruleset\n${BASE}` });
          assert.equal(r.code, 0, `${q}: base ruleset: ${r.stderr}`);
        }
        const blank = await probes(s);
        assert.equal(blank['work → personal:22'], 'timeout', 'the Qubes base ruleset alone refuses the connection');
        assert.equal(blank['world(web) → sys-net:8080'], 'timeout', 'and the forward');
        const run = async (f: ExportFile) => {
          const file = join(dir, `${f.qube}.sh`);
          writeFileSync(file, f.text, { mode: 0o755 });
          const r = await s.sh(f.qube, ['sh', file]);
          assert.equal(r.code, 0, `${f.qube}/${f.path}: ${r.stderr}`);
        };
        for (const f of files) await run(f);
        const once = await Promise.all(QUBES.map((q) => ruleset(s, q)));
        for (const f of files) await run(f);
        const twice = await Promise.all(QUBES.map((q) => ruleset(s, q)));
        QUBES.forEach((q, i) => assert.equal(twice[i], once[i], `${q}: the second run changed the ruleset`));
        assert.match(once[1]!, /chain custom-forward \{\n\s+jump qnet-forward\n\s+\}/, 'one jump in custom-forward');
        assert.deepEqual(await probes(s), underQnet, 'the exported scripts give what qnet gives');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
