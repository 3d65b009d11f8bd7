// The simulator: interprets qnet's nftables IR over the network plan and explains every verdict.
export { type Probe, type Packet, PROTO } from './packet.js';
export { evalChain, evalHook, type ChainResult, type ChainStep, type Counters, type EvalOptions, type FinalVerdict, type HookResult, type NatDecision, type RuleRef } from './evaluate.js';
export { simulate, OUTSIDE, OUTSIDE_HOST, type Hop, type NatNote, type PacketView, type SimOptions, type SimResult, type World } from './walk.js';
export { newSimState, forgetFlows, type Conn, type SimState } from './conntrack.js';
export { prepare, SimLoadError } from './prepare.js';
export { formatTrace, formatReject } from './trace.js';
