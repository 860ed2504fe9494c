/**
 * The conformance suite's view of a runtime.
 *
 * relup's semantics (docs/protocol.md "Semantics a node owes", design §3) are
 * stated ONCE, in test/conformance/*.test.ts, and every runtime's node must
 * pass them. A test there never knows which runtime it drives: it talks to
 * the node only through the control protocol (src/client/connection.ts) and
 * the CLI, and it only sees the *logical* conformance app described below.
 *
 * ## How a runtime joins
 *
 * 1. Write the logical app (below) in your runtime's language, at every
 *    version, as release directories `releases/<version>/` with
 *    `release.yaml` (`runtime: <yours>`). The appups are shared and
 *    runtime-neutral: test/conformance/app/appups/*.yaml. Do not write your
 *    own.
 * 2. Implement `ConformanceRuntime` in test/conformance/runtimes/<name>.ts
 *    (see node.ts and erlang.ts): `available()` says whether the runtime is
 *    installed (and the command that installs it), `writeProject()` copies
 *    your releases and the shared appups into a scratch directory,
 *    `startNode()` boots a real node process on a release with a Unix
 *    control socket and resolves once the socket answers `status`. A runtime
 *    without Unix sockets (Lua/Silly) listens on TCP loopback instead, ignores
 *    `socket`, and returns the shared secret in `RunningNode.secret`: the
 *    suite then authenticates (docs/protocol.md, challenge and sealed frames)
 *    through `openNode` and `cliTarget` below.
 * 3. Add it to `RUNTIMES` in test/conformance/runtimes/index.ts. Every
 *    scenario then runs against it; a missing runtime is skipped loudly (or
 *    fails the run under CI=true, see test/helpers/runtimes.ts).
 *
 * ## The logical conformance app ("conf")
 *
 * One process, `counter`, a gen_server-like process whose state is a JSON
 * object. It answers `call` requests (the protocol's `call` op) whose
 * message is a JSON object with an `op`:
 *
 * | message                     | reply                                          |
 * |-----------------------------|------------------------------------------------|
 * | `{op:"incr"}`               | the count after adding 1 (a number)            |
 * | `{op:"get"}`                | the count                                      |
 * | `{op:"version"}`            | the code version that handled it ("1.0.0" …)   |
 * | `{op:"state"}`              | the whole state object                         |
 * | `{op:"sleep", ms}`          | `"slept"`, after keeping the process busy `ms` |
 *
 * Versions (each a release of the `conf` app with the `counter` module and
 * the `counter` process; `exports` declared in release.yaml):
 * - 1.0.0: state `{count}`; exports include `init`-equivalents for the runtime.
 * - 1.1.0: state `{count, step}`; appup up from 1.0.0 runs migration
 *   `addStep` (sets `step` to `extra.step`), down runs `dropStep` (removes
 *   `step`). `incr` adds `step`.
 * - 1.2.0: same state as 1.1.0; its up migration `crash` (from 1.1.0) raises
 *   after changing the state it was given: the upgrade must roll back with
 *   the state byte-identical.
 * - 1.3.0: same state as 1.1.0; its up migration `slow` (from 1.1.0) sleeps
 *   `extra.sleepMs` (1500) and returns the state unchanged: the window in
 *   which the suite kills clients and nodes and asks for `status`.
 * Refusal before the point of no return is tested with the version guard
 *   and a tampered bundle, which every runtime must implement identically.
 *
 * `states` (the protocol op) must return `{ processes: { counter: <state> } }`
 * with the state as the JSON object above.
 */
import { Connection } from '../../src/client/connection.js';
import type { Target } from '../../src/client/target.js';

export type RuntimeName = 'node' | 'erlang' | 'lua';

export type Availability = { ok: true } | { ok: false; reason: string; install: string };

export interface StartNodeOptions {
  /** The project directory written by `writeProject`. */
  projectDir: string;
  /** The release version to boot when the state directory is fresh. */
  version: string;
  /** Unix socket path for the control socket (the suite picks it). */
  socket: string;
  /** The node's state directory (history, installed bundles): reused across restarts. */
  stateDir: string;
  /** Extra environment for the node process. */
  env?: Record<string, string>;
}

export interface RunningNode {
  target: Target;
  /** The shared secret a TCP target requires (`auth: "challenge"`); undefined for a Unix socket. */
  secret?: string;
  /** The OS pid of the process that holds the node's state (the one SIGKILL must hit). */
  pid: number;
  /** Everything the node process printed so far (for failure messages). */
  output(): string;
  /** SIGTERM, wait for exit; resolves with the exit code. */
  stop(): Promise<number | undefined>;
  /** SIGKILL the node process (no cleanup); resolves once it is gone. */
  kill(): Promise<void>;
}

export interface ConformanceRuntime {
  name: RuntimeName;
  /** Whether the runtime can run here; when not, why and the command that installs it. */
  available(): Promise<Availability>;
  /** Copy the runtime's releases of the conformance app and the shared appups into `dir`. */
  writeProject(dir: string): Promise<void>;
  /** Boot a real node process (resolves once its control socket answers `status`). */
  startNode(options: StartNodeOptions): Promise<RunningNode>;
  /**
   * How the node runs a transaction, the ONE place the suite lets runtimes differ:
   * - `live` (the default; Node.js, Erlang): the node keeps serving while a
   *   transaction runs. `status` is answered during it and shows the
   *   suspended processes; a second `apply` gets `busy`.
   * - `holds-node` (Lua/Silly: one Lua state, and the transaction never yields
   *   from the point of no return to its end, docs/runtime-lua.md): nothing
   *   else runs while it does. A slow migration is a busy wait. Requests that
   *   arrive meanwhile (status, calls, a second apply) wait and are answered
   *   after it — late, never lost; a second apply is therefore answered after
   *   the first ends and finds nothing left to do. The suite learns that the
   *   transaction is running from the apply's own step events instead of
   *   `status`. What it still asserts: messages wait and are handled once, in
   *   order; a client killed mid-transaction → the node finishes alone; a node
   *   killed mid-transaction → a restart boots the permanent release.
   */
  transaction?: 'live' | 'holds-node';
}

/** A control connection to a running node (authenticated when its target is TCP). */
export function openNode(node: RunningNode): Promise<Connection> {
  return Connection.open(node.target, node.secret === undefined ? {} : { secret: Buffer.from(node.secret) });
}

/** `--target` for the CLI, and the environment that carries the secret (RELUP_SECRET) for a TCP target. */
export function cliTarget(node: RunningNode): { target: string; env: Record<string, string> } {
  const t = node.target;
  if (t.kind === 'unix') return { target: t.path, env: {} };
  return { target: `${t.host}:${t.port}`, env: node.secret === undefined ? {} : { RELUP_SECRET: node.secret } };
}

/** The versions every runtime's conformance app must provide. */
export const CONFORMANCE_VERSIONS = ['1.0.0', '1.1.0', '1.2.0', '1.3.0'] as const;

/** Poll `probe` (every `everyMs`) until it gives a value; fail after `ms` saying what never happened. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000, everyMs = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The nodes a test file started; each file kills its own after every test. */
export function trackNodes(afterEach: (fn: () => Promise<void>) => void): RunningNode[] {
  const running: RunningNode[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((n) => n.kill().catch(() => undefined)));
  });
  return running;
}
