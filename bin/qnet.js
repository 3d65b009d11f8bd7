#!/usr/bin/env node
// Entry point of the installed `qnet` (and of `node bin/qnet.js` in a checkout): runs the CLI's bundle
// (dist/cli, scripts/build-cli.mjs).
// A checkout builds it with `npm run build` (scripts/quickstart does); the npm package ships it.
const argv = process.argv.slice(2);

/** The compiled module, or one line saying how to build it. */
async function load(path) {
  try {
    return await import(path);
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/cli/')) throw e;
    process.stderr.write('qnet: not built yet: run `npm run build` (or scripts/quickstart demo) in the qnet checkout\n');
    process.exit(1);
  }
}

// `qnet --version` answers before the CLI (commander and every command) is loaded.
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  process.stdout.write(`${(await load('../dist/cli/version.js')).VERSION}\n`);
} else {
  // A reader that stops early (`qnet firewall big | head`) is not an error: end quietly.
  for (const s of [process.stdout, process.stderr])
    s.on('error', (e) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  process.exitCode = await (await load('../dist/cli/main.js')).main(argv);
}
