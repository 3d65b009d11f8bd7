#!/usr/bin/env node
// Entry point for `npx qnet`: runs the compiled CLI (built by `npm ci` through the prepare script).
import { main } from '../dist/src/cli/main.js';

// A reader that stops early (`qnet firewall big | head`) is not an error: end quietly.
for (const s of [process.stdout, process.stderr])
  s.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });

process.exitCode = await main(process.argv.slice(2));
