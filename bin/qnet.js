#!/usr/bin/env node
// Entry point of the installed `qnet` (and of `node bin/qnet.js` in a checkout): runs the compiled CLI.
// A checkout builds it with `npm run build` (scripts/quickstart does); the npm package ships it.
let main;
try {
  ({ main } = await import('../dist/src/cli/main.js'));
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/src/cli/main.js')) throw e;
  process.stderr.write('qnet: not built yet: run `npm run build` (or scripts/quickstart demo) in the qnet checkout\n');
  process.exit(1);
}

// A reader that stops early (`qnet firewall big | head`) is not an error: end quietly.
for (const s of [process.stdout, process.stderr])
  s.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });

process.exitCode = await main(process.argv.slice(2));
