#!/usr/bin/env node
// Entry point for `npx qnet`: runs the compiled CLI (built by `npm ci` through the prepare script).
const argv = process.argv.slice(2);
// `qnet --version` answers before the CLI (commander and every command) is loaded.
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  const { VERSION } = await import('../dist/src/cli/version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  // A reader that stops early (`qnet firewall big | head`) is not an error: end quietly.
  for (const s of [process.stdout, process.stderr])
    s.on('error', (e) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  const { main } = await import('../dist/src/cli/main.js');
  process.exitCode = await main(argv);
}
