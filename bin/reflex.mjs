#!/usr/bin/env node
// Runs the CLI from TypeScript sources through tsx, so a checkout needs no build step. Started by
// bin/reflex, which hands the environment over a pipe (see src/cli/environment.ts).
import { register } from 'tsx/esm/api';

register();
const { restoreEnvironment } = await import('../src/cli/environment.ts');
try {
  restoreEnvironment();
} catch (error) {
  process.stderr.write(`error: cannot read the environment handed over by bin/reflex: ${error.message}\n`);
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
