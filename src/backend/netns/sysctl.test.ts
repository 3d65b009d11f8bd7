import test from 'node:test';
import assert from 'node:assert/strict';
import { FORWARDING, NO_ICMP_RATELIMIT, setSysctls, sysctlArgv } from './sysctl.js';
import { NetnsError } from './links.js';
import { ScriptedRunner } from './runner.js';

test('all settings of a namespace in one sysctl process', async () => {
  const r = new ScriptedRunner([
    {
      argv: ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0'],
      netns: 'qn-fw',
    },
  ]);
  await setSysctls(r, 'qn-fw', { ...FORWARDING, ...NO_ICMP_RATELIMIT });
  await setSysctls(r, 'qn-fw', {}); // nothing to do: no process
  r.assertDone();
});

test('only net.* keys with plain values reach the command', () => {
  const bads: Record<string, string | number>[] = [{ 'kernel.panic': 1 }, { 'net.ipv4.ip_forward': '1 -w x=y' }, { 'net.ipv4.ip_forward=0 net.x': 1 }];
  for (const bad of bads)
    assert.throws(() => sysctlArgv(bad), NetnsError);
});
