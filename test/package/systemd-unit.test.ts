// systemd/qnet.service: the directives qnet relies on, systemd's own verifier, and the exposure
// score (`systemd-analyze security`), when systemd-analyze is installed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../cases/compile/baseline.js';

const UNIT = join(repoRoot(), 'systemd', 'qnet.service');

/** section → key → values in order (a key may repeat; an empty assignment resets, as systemd does). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[([A-Za-z]+)\]$/.exec(line);
    if (s) {
      section = new Map();
      out.set(s[1]!, section);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && section, `line ${i + 1} is not Key=value inside a section: ${line}`);
    const [, k, v] = kv;
    if (v === '') section.set(k!, []);
    else section.set(k!, [...(section.get(k!) ?? []), v!]);
  }
  return out;
}

const unit = parseUnit(readFileSync(UNIT, 'utf8'));
const get = (sec: string, key: string): string[] => unit.get(sec)?.get(key) ?? [];
const one = (sec: string, key: string): string | undefined => {
  const v = get(sec, key);
  assert.ok(v.length <= 1, `${key}= appears ${v.length} times`);
  return v[0];
};
const words = (sec: string, key: string): string[] => get(sec, key).flatMap((v) => v.split(/\s+/));

test('unit: readiness, reload, ordering after nftables, state and runtime directories', () => {
  assert.equal(one('Service', 'Type'), 'notify', 'the daemon says READY=1 (src/daemon/notify.ts)');
  assert.equal(one('Service', 'NotifyAccess'), 'all', 'systemd-notify, a child, sends it');
  assert.match(one('Service', 'ExecReload') ?? '', /^\/\S*kill -HUP \$MAINPID$/, 'reload = SIGHUP = re-resolve every name');
  assert.ok(words('Unit', 'After').includes('nftables.service'), "nftables.service's flush ruleset must not run after qnet");
  assert.equal(one('Service', 'StateDirectory'), 'qnet');
  assert.equal(one('Service', 'RuntimeDirectory'), 'qnet');
  assert.deepEqual(get('Service', 'Environment'), ['QNET_STATE=/var/lib/qnet'], 'the StateDirectory');
  assert.equal(one('Service', 'KillMode'), 'process', 'the qubes outlive a daemon restart');
  assert.deepEqual(get('Install', 'WantedBy'), ['multi-user.target']);
});

test('unit: runs the installed qnet, not a checkout', () => {
  const exec = one('Service', 'ExecStart') ?? '';
  assert.match(exec, /^\/usr(\/local)?\/bin\/qnet daemon$/);
  assert.doesNotMatch(readFileSync(UNIT, 'utf8').replace(/^#.*$/gm, ''), /\/opt\//);
});

test('unit: exactly the capabilities a netns manager needs, and no mount namespace', () => {
  assert.deepEqual(words('Service', 'CapabilityBoundingSet').sort(), ['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_ADMIN']);
  assert.equal(one('Service', 'NoNewPrivileges'), 'yes');
  assert.deepEqual(words('Service', 'RestrictNamespaces').sort(), ['mnt', 'net']);
  assert.deepEqual(words('Service', 'RestrictAddressFamilies').sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
  assert.ok(words('Service', 'SystemCallFilter').includes('@mount'), 'ip netns add/exec mount');
  // Any of these gives the service a mount namespace of its own, whose mounts never reach the host:
  // `ip netns add` there leaves an empty /run/netns/<ns> on the host. Each must stay off.
  for (const k of ['ProtectSystem', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'ReadWritePaths', 'ReadOnlyPaths',
    'InaccessiblePaths', 'BindPaths', 'TemporaryFileSystem', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs',
    'ProtectControlGroups', 'ProtectProc', 'ProcSubset', 'PrivateIPC', 'MountFlags', 'RootDirectory', 'PrivateNetwork', 'PrivateUsers'])
    assert.equal(get('Service', k).length, 0, `${k}= would hide the namespaces qnet creates from the host`);
});

const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
const noAnalyze = analyze.status === 0 ? undefined : 'systemd-analyze is not installed (apt-get install systemd)';
if (noAnalyze) console.error(`# SKIP systemd-analyze checks: ${noAnalyze}`);

/** The unit with ExecStart pointing at this checkout's bin/qnet.js, which exists here. */
function withLocalUnit(fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'qnet-unit-'));
  try {
    const p = join(dir, 'qnet.service');
    const text = readFileSync(UNIT, 'utf8').replace(/^ExecStart=\S+/m, `ExecStart=${join(repoRoot(), 'bin', 'qnet.js')}`);
    writeFileSync(p, text);
    fn(p);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('unit: systemd-analyze verify finds nothing', { skip: noAnalyze ?? false }, () => {
  withLocalUnit((p) => {
    // --man=no: the man page is checked by the package test, installed.
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', p], { encoding: 'utf8' });
    assert.equal(r.stderr.trim(), '', 'no warnings (an unknown key is only a warning)');
    assert.equal(r.status, 0);
  });
});

test('unit: systemd-analyze security rates it 5.0 or better', { skip: noAnalyze ?? false }, () => {
  withLocalUnit((p) => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', p], { encoding: 'utf8' });
    const m = /Overall exposure level for \S+: (\d+\.\d)/.exec(r.stdout);
    assert.ok(m, `no score in:\n${r.stdout}${r.stderr}`);
    console.error(`# systemd-analyze security: ${m[1]}`);
    assert.ok(Number(m[1]) <= 5.0, `exposure ${m[1]} > 5.0`);
  });
});
