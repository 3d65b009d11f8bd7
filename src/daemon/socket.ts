// Where the daemon listens and how a client proves it may talk to it.
//
// The socket is an *abstract* Unix socket. Abstract sockets belong to the network namespace they
// were bound in, so no process inside a qube (another network namespace) can even connect — unlike
// a socket file, which every namespace sharing the filesystem could reach. Within the host
// namespace, a client must present the token from a root-only file (0600): root only.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirDurable, writeFileAtomic } from '../store/atomic.js';

export function socketName(stateDir: string): string {
  return `\0qnet:${createHash('sha256').update(stateDir).digest('hex').slice(0, 24)}`;
}

export const tokenPath = (runDir: string) => join(runDir, 'daemon.token');
export const pidPath = (runDir: string) => join(runDir, 'daemon.pid');

export async function newToken(runDir: string): Promise<string> {
  await mkdirDurable(runDir);
  const token = randomBytes(32).toString('hex');
  await writeFileAtomic(tokenPath(runDir), token + '\n', 0o600);
  return token;
}

export async function readToken(runDir: string): Promise<string> {
  return (await readFile(tokenPath(runDir), 'utf8')).trim();
}
