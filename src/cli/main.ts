#!/usr/bin/env node
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { styleText } from 'node:util';
import { ConfigError, EXIT_USAGE, InternalError, NodeError, UserError, EXIT_FAILED } from '../errors/errors.js';
import type { CommandIo } from './io.js';
import { printDiagnostics } from './print-diagnostics.js';

/**
 * The CLI only parses, calls and prints. Each command's module is imported
 * when it runs, so `relup --help` stays fast. The one catch below maps error
 * classes to exit codes: 0 ok, 1 findings / failed upgrade, 2 bad input or
 * internal error; stacks only with --debug.
 */
type Handler = (args: Record<string, unknown>, io: CommandIo) => Promise<number>;

const lazy =
  (load: () => Promise<{ run: Handler }>) =>
  async (args: Record<string, unknown>, io: CommandIo): Promise<number> =>
    (await load()).run(args, io);

const releasesOptions = (y: Argv) =>
  y
    .option('releases', { type: 'string', describe: 'directory holding release directories and bundles', defaultDescription: 'releases from relup.config.yaml, else ./releases' })
    .option('appups', { type: 'string', describe: 'directory holding appup files', defaultDescription: 'appups from relup.config.yaml, else ./appups' });

const targetOptions = (y: Argv) =>
  y.option('target', { type: 'string', describe: 'the node: a socket path, host:port, or a target name from relup.config.yaml', defaultDescription: 'defaultTarget from relup.config.yaml' });

/** Flag combinations yargs cannot express; a thrown error is a usage error (exit 2). Pure, so it is unit-tested. */
export function checkFlags(argv: Record<string, unknown>): true {
  if (argv['fixture'] !== undefined && argv['live'] !== true) throw new Error('--fixture only applies to --live: add --live, or drop --fixture');
  return true;
}

export async function main(argv: string[], io: CommandIo): Promise<number> {
  let exitCode = 0;
  let debug = argv.includes('--debug');
  const run = (handler: Handler) => async (args: Record<string, unknown>) => {
    exitCode = await handler(args, { ...io, color: io.color && args['color'] !== false });
  };

  const cli = yargs(argv)
    .scriptName('relup')
    .usage('relup <command> [options]\n\nPlanned, checked, reversible hot upgrades for long-running services.')
    .command(
      'plan <from> <to>',
      'Plan the upgrade (or downgrade) between two releases and print it; through intermediate releases when no appup entry connects them',
      (y) =>
        releasesOptions(y)
          .positional('from', { type: 'string', describe: 'version the node runs now (1.2.2 or v1.2.2)' })
          .positional('to', { type: 'string', describe: 'version to move to; lower than <from> plans a downgrade' })
          .option('json', { type: 'boolean', describe: 'print the relup script as JSON (byte-identical for identical inputs)' })
          .option('out', { type: 'string', describe: 'also write the relup script (JSON) to this file' })
          .example('relup plan 1.2.2 1.2.3', 'show the steps of the demo upgrade and why each is there')
          .example('relup plan v1.2.3 v1.2.2 --json', 'the downgrade script, for machines'),
      run(lazy(() => import('./commands/plan-command.js'))),
    )
    .command(
      'check',
      'CI dry run: validate every release and appup, compile every module, and plan every declared transition both ways',
      (y) =>
        releasesOptions(y)
          .option('json', { type: 'boolean', describe: 'print the transitions and diagnostics as JSON' })
          .option('reporter', { choices: ['text', 'github'] as const, default: 'text', describe: 'github: workflow annotations on file and line' })
          .option('live', { type: 'boolean', describe: 'also run each transition up and down on a scratch node and compare the state before and after' })
          .option('fixture', { type: 'string', describe: 'with --live: JSON state and traffic to start from, {"states","calls","invokes","ignore"} (capture one with relup status --states)' })
          .check(checkFlags)
          .example('relup status --target run/demo.sock --states > fixture.json && relup check --live --fixture fixture.json', 'prove every round trip keeps real state')
          .example('relup check', 'exit 1 with file:line for every error')
          .example('relup check --reporter github', 'annotate a pull request in GitHub Actions'),
      run(lazy(() => import('./commands/check-command.js'))),
    )
    .command('node', 'Run a node (Node.js, or a Lua release in Silly)', (y) =>
      y
        .command(
          'start',
          'Start a node in the foreground on a release, with a control socket',
          (yy) =>
            yy
              .option('release', { type: 'string', describe: 'release directory or bundle to boot (first start; later starts boot the permanent release from --state-dir)' })
              .option('socket', { type: 'string', describe: 'path of the Unix control socket (created 0600; its directory must be writable only by you); required for Node.js nodes' })
              .option('state-dir', { type: 'string', describe: 'where installed bundles and the release history live', defaultDescription: './.relup-state' })
              .option('port', { type: 'number', describe: 'HTTP port for the service (relup.config.port); 0 picks a free one' })
              .option('set', { type: 'string', array: true, describe: 'other settings for relup.config, key=value (JSON values allowed)' })
              .option('idle-timeout', { type: 'number', describe: 'close control connections idle this many ms', defaultDescription: '300000' })
              .option('listen', { type: 'string', describe: 'also accept control connections over TCP at [host:]port (host defaults to 127.0.0.1); needs --secret-file' })
              .option('secret-file', { type: 'string', describe: 'file (mode 0600) holding the shared secret TCP clients must prove they know' })
              .option('tls-cert', { type: 'string', describe: 'with --listen: serve TCP control inside TLS 1.3 with this certificate (PEM); clients trust it by tls.ca or tls.fingerprint' })
              .option('tls-key', { type: 'string', describe: 'with --tls-cert: the private key (PEM, mode 0600)' })
              .option('public-key', { type: 'string', describe: 'accept only bundles signed by this ed25519 public key (from relup keys generate)' })
              .option('silly', { type: 'string', describe: 'for a runtime: lua release: the Silly binary to run it in (default: $SILLY, else the build under .cache/silly)' })
              .option('pause-timers', { type: 'boolean', describe: 'stop time: node-owned timers are registered but never fire (what relup check --live uses for its scratch nodes)' })
              .option('states', { type: 'string', describe: 'boot with these module and process states instead of the initial ones: a JSON file from relup status --states (scratch and test nodes)' })
              .example('relup node start --socket run/demo.sock --listen 127.0.0.1:7070 --secret-file run/secret --public-key keys/relup.pub', 'TCP control with a shared secret, signed bundles only')
              .example('relup node start --socket run/demo.sock --listen 0.0.0.0:7070 --secret-file run/secret --tls-cert run/tls.crt --tls-key run/tls.key', 'remote control inside TLS 1.3 (clients: tls.ca or tls.fingerprint in relup.config.yaml)')
              .example('relup node start --release releases/1.2.2 --socket run/demo.sock --port 8080', 'run the demo service on 1.2.2')
              .example('relup node start --release examples/silly/releases/1.2.2 --listen 127.0.0.1:7070 --secret-file run/secret --port 7080', 'a Lua release in Silly (TCP control only; docs/runtime-lua.md)'),
          run(lazy(() => import('./commands/node-start-command.js'))),
        )
        .demandCommand(1, 'name a node subcommand: start'),
    )
    .command(
      'status',
      'Show a node: current, permanent and previous releases, history, modules, processes',
      (y) =>
        targetOptions(y)
          .option('json', { type: 'boolean', describe: 'print the status as JSON' })
          .option('states', { type: 'boolean', describe: 'print every module and process state as a fixture for relup check --live --fixture' })
          .conflicts('states', 'json')
          .example('relup status --target run/demo.sock', 'releases, history, modules, processes, timers')
          .example('relup status --target run/demo.sock --states > fixture.json', 'capture real state to round-trip with relup check --live --fixture fixture.json'),
      run(lazy(() => import('./commands/status-command.js'))),
    )
    .command(
      'apply',
      'Upgrade a running node: plan from its release to --to, send the bundle, watch each step',
      (y) =>
        releasesOptions(targetOptions(y))
          .option('to', { type: 'string', describe: 'version to move to', defaultDescription: 'the newest release' })
          .option('dry-run', { type: 'boolean', describe: 'run only the checks before the point of no return on the node; nothing changes' })
          .option('permanent', { type: 'boolean', default: true, describe: 'make the new release the one a restart boots (--no-permanent keeps the old one)' })
          .option('deadline', { type: 'number', describe: 'ms the whole transaction may take before the node rolls back', defaultDescription: '30000' })
          .option('show-plan', { type: 'boolean', describe: 'print the full plan before applying it' })
          .option('json', { type: 'boolean', describe: 'print the outcome as JSON (with --fleet or --soak: one JSON event per line, then the result)' })
          .option('fleet', { type: 'string', describe: 'roll out to a fleet from relup.config.yaml: canary, then waves (docs/fleet.md)' })
          .option('canary', { type: 'number', describe: 'with --fleet: nodes upgraded first, alone', defaultDescription: 'the fleet\'s canary, else 1' })
          .option('wave-size', { type: 'number', describe: 'with --fleet: nodes per wave after the canary', defaultDescription: 'the fleet\'s waveSize, else 1' })
          .option('concurrency', { type: 'number', describe: 'with --fleet: nodes of a wave upgraded at the same time', defaultDescription: 'the wave size' })
          .option('on-failure', { choices: ['rollback', 'leave'] as const, describe: 'with --fleet: when a node fails, roll back the nodes upgraded in this rollout, or leave them and report', defaultDescription: 'rollback' })
          .option('soak', { type: 'string', describe: 'keep the new release not permanent this long (500ms, 30s, 2m), checking health; a failing check rolls it back' })
          .option('health-path', { type: 'string', describe: "health check: GET this path on the node's HTTP service, 2xx is healthy" })
          .option('health-port', { type: 'number', describe: "with --health-path: the port of the node's HTTP service (needed for Erlang and Lua nodes, which report no servers)", defaultDescription: 'the first server in the node\'s status' })
          .option('health-invoke', { type: 'string', describe: 'health check: call module.function, or module.function(JSON args), of the running release; true or {ok:true} is healthy' })
          .option('health-timeout', { type: 'number', describe: 'ms each health check may take', defaultDescription: '5000' })
          .option('health-interval', { type: 'number', describe: 'ms between health checks during a soak', defaultDescription: '1000' })
          .conflicts('fleet', ['target', 'dry-run'])
          .conflicts('soak', 'dry-run')
          .implies({ canary: 'fleet', 'wave-size': 'fleet', concurrency: 'fleet', 'on-failure': 'fleet' })
          .example('relup apply --fleet prod --to 1.2.3', 'canary, then waves; halt and roll back on the first failure')
          .example('relup apply --target run/demo.sock --soak 30s --health-path /health', 'commit, watch for 30 s, then make permanent (or roll back)')
          .example('relup apply --target run/demo.sock --to 1.2.3', 'upgrade the demo node')
          .example('relup apply --dry-run', 'check on the node that the upgrade would pass every check'),
      run(lazy(() => import('./commands/apply-command.js'))),
    )
    .command(
      'rollback',
      'Return a running node to its previous release (or --to VERSION) through the down path',
      (y) =>
        releasesOptions(targetOptions(y))
          .option('to', { type: 'string', describe: 'version to return to', defaultDescription: 'the previous release' })
          .option('dry-run', { type: 'boolean', describe: 'run only the checks before the point of no return' })
          .option('permanent', { type: 'boolean', default: true, describe: 'make the release returned to the one a restart boots' })
          .option('deadline', { type: 'number', describe: 'ms the whole transaction may take' })
          .option('json', { type: 'boolean', describe: 'print the outcome as JSON' })
          .example('relup rollback --target run/demo.sock', 'back to the release before the last upgrade'),
      run(lazy(() => import('./commands/rollback-command.js'))),
    )
    .command('appup', 'Write appups', (y) =>
      y
        .command(
          'draft <release>',
          'Write a draft appup for a release from its differences with the newest older one (or --from)',
          (yy) =>
            releasesOptions(yy)
              .positional('release', { type: 'string', describe: 'the release the appup describes (1.2.4 or v1.2.4)' })
              .option('from', { type: 'string', describe: 'the older release to compare with', defaultDescription: 'the newest release older than <release>' })
              .option('out', { type: 'string', describe: 'file to write', defaultDescription: '<appups>/<release>.yaml' })
              .option('force', { type: 'boolean', describe: 'overwrite an existing appup file' })
              .option('print', { type: 'boolean', describe: 'print the draft instead of writing it' })
              .option('json', { type: 'boolean', describe: 'print the counts and migration stubs as JSON' })
              .example('relup appup draft 1.2.4', 'appups/1.2.4.yaml from the differences between 1.2.3 and 1.2.4; then relup check')
              .example('relup appup draft 2.0.0 --from 1.2.3 --print', 'see the draft without writing it'),
          run(lazy(() => import('./commands/appup-draft-command.js'))),
        )
        .demandCommand(1, 'name an appup subcommand: draft'),
    )
    .command('keys', 'Manage signing keys', (y) =>
      y
        .command(
          'generate',
          'Create an ed25519 key pair for signing bundles',
          (yy) =>
            yy
              .option('out-dir', { type: 'string', default: 'keys', describe: 'where to write <name>.key (0600) and <name>.pub' })
              .option('name', { type: 'string', default: 'relup', describe: 'file name of the pair' })
              .option('json', { type: 'boolean', describe: 'print the paths and fingerprint as JSON' })
              .example('relup keys generate', 'keys/relup.key and keys/relup.pub'),
          run(lazy(() => import('./commands/keys-generate-command.js'))),
        )
        .demandCommand(1, 'name a keys subcommand: generate'),
    )
    .command('release', 'Pack, verify and sign release bundles', (y) =>
      y
        .command(
          'pack <release>',
          'Write releases/<name>-<version>.tar.gz with a manifest of sha256 hashes',
          (yy) =>
            yy
              .positional('release', { type: 'string', describe: 'a version in --releases, or a release directory' })
              .option('releases', { type: 'string', describe: 'directory holding the releases', defaultDescription: 'from relup.config.yaml, else ./releases' })
              .option('out-dir', { type: 'string', describe: 'where to write the bundle (default: the releases directory)' })
              .option('json', { type: 'boolean', describe: 'print the result as JSON' })
              .example('relup release pack 1.2.3', 'bundle releases/1.2.3'),
          run(lazy(() => import('./commands/release-pack-command.js'))),
        )
        .command(
          'verify <release>',
          'Check every hash of a bundle (or validate a release directory)',
          (yy) =>
            yy
              .positional('release', { type: 'string', describe: 'a bundle, a release directory, or a version in --releases' })
              .option('releases', { type: 'string', describe: 'directory holding the releases', defaultDescription: 'from relup.config.yaml, else ./releases' })
              .option('json', { type: 'boolean', describe: 'print the report as JSON' })
              .option('public-key', { type: 'string', describe: 'also require a valid signature by this public key', defaultDescription: 'publicKey from relup.config.yaml' })
              .example('relup release verify releases/demo-1.2.3.tar.gz', 'exit 1 on any changed, missing or extra file'),
          run(lazy(() => import('./commands/release-verify-command.js'))),
        )
        .command(
          'sign <release>',
          'Sign a bundle with an ed25519 private key (adds manifest.sig)',
          (yy) =>
            yy
              .positional('release', { type: 'string', describe: 'a bundle, or a version whose bundle is in --releases' })
              .option('key', { type: 'string', demandOption: true, describe: 'the private key (.key) from relup keys generate' })
              .option('releases', { type: 'string', describe: 'directory holding the releases', defaultDescription: 'from relup.config.yaml, else ./releases' })
              .option('json', { type: 'boolean', describe: 'print the result as JSON' })
              .example('relup release sign 1.2.3 --key keys/relup.key', 'sign releases/demo-1.2.3.tar.gz'),
          run(lazy(() => import('./commands/release-sign-command.js'))),
        )
        .demandCommand(1, 'name a release subcommand: pack, verify or sign'),
    )
    .option('config', { type: 'string', describe: 'configuration file (targets, directories)', defaultDescription: './relup.config.yaml when present' })
    .option('color', { type: 'boolean', describe: 'colour the output (default: when printing to a terminal; NO_COLOR disables)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces of internal errors' })
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((message, err) => {
      if (err) throw err;
      throw new UserError(message ?? 'invalid arguments', 'run the command with --help to see its options');
    });

  // yargs lays out the help of every command it runs and caches it (string
  // widths, wrapping: 25–60 ms, docs/performance.md), for errors that print
  // help. Ours never do (see .fail above): lay it out only when asked for.
  if (!argv.some((a) => a === '--help' || a === '-h' || a === 'help')) {
    const usage = (cli as unknown as { getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } } }).getInternalMethods().getUsageInstance();
    usage.cacheHelpMessage = () => undefined;
  }

  try {
    const parsed = await cli.parseAsync(argv);
    debug = parsed['debug'] === true;
    return exitCode;
  } catch (e) {
    return report(e, io, debug);
  }
}

function report(e: unknown, io: CommandIo, debug: boolean): number {
  const paint = (style: Parameters<typeof styleText>[0], text: string) => (io.color ? styleText(style, text) : text);
  if (e instanceof ConfigError) printDiagnostics(e.diagnostics, io);
  if (e instanceof UserError || e instanceof NodeError) {
    io.stderr.write(`${paint('red', 'error')}: ${e.message}\n`);
    if (e.hint !== undefined) io.stderr.write(`  ${paint('cyan', 'hint:')} ${e.hint}\n`);
    if (debug && e.stack !== undefined) io.stderr.write(`${e.stack}\n`);
    return e instanceof UserError ? EXIT_USAGE : EXIT_FAILED;
  }
  const err = e instanceof Error ? e : new InternalError(String(e));
  io.stderr.write(`${paint('red', 'internal error')}: ${err.message}\n`);
  io.stderr.write(debug && err.stack !== undefined ? `${err.stack}\n` : '  this is a bug in relup: run again with --debug and report the output\n');
  return EXIT_USAGE;
}

// No top-level await: the launcher runs the bundle as a CommonJS script (src/cli/build-cli-bundle.mjs).
const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isEntry) {
  // A closed pipe (`relup plan … | head`) is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined && process.env['CI'] === undefined;
  void main(hideBin(process.argv), { cwd: process.cwd(), stdout: process.stdout, stderr: process.stderr, color }).then((code) => {
    process.exitCode = code;
  });
}
