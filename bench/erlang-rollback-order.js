// Why a failing upgrade of the Erlang demo ended `rollback-failed` instead of
// `rolled-back`, and what step order fixes it (issue 10: "in-place rollback
// where release_handler restarts the node"). No load: an Erlang node on
// 1.0.0 with three idle client connections is sent the planner's script for
// 1.0.0 → 1.2.0 (1.1.0 with a game:code_change/3 that raises), then the same
// script with `switch chat_server` moved after `migrate game`.
//
// With the planner's order the plain processes of chat_server (the index
// actor, each connection actor) sit in chat_server's 1.0.0 code, which the
// switch made "old"; the rollback can make 1.0.0 current again only by
// purging that old slot, which would kill them, so it refuses (correctly)
// and the outcome is rollback-failed with chat_server left on 1.2.0's code.
// With the migration first, the failure comes before chat_server is touched.
//
// The planner now orders it so (docs/relup-script.md: a group's plain modules
// switch after its migrations), so both scripts print `rolled-back`; the
// script stays as the measurement behind that rule, and
// test/runtime/erlang/erlang-plain-rollback.test.ts guards it.
//
//   node bench/erlang-rollback-order.js      (after `npm run build`; needs erl)
// Everything on 127.0.0.1 and a Unix socket; the node is stopped by pid.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cp } from 'node:fs/promises';
import { execa } from 'execa';
import { CLI, REPO, onCleanup, runCleanups } from './lib.js';
import { prepareFailingRelease } from './erlang-bench.js';
import { startErlangNode } from '../dist/runtime/erlang/erlang-driver.js';
import { Connection } from '../dist/client/connection.js';

async function attempt(dir, script, bundle, label) {
  const sock = join(dir, `${label}.sock`);
  const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket: sock, stateDir: join(dir, `state-${label}`), config: { port: 0 } });
  const forget = onCleanup(async () => {
    node.child.kill('SIGKILL');
    await node.child;
  });
  const sockets = [];
  try {
    const c = await Connection.open({ kind: 'unix', path: sock });
    const port = await c.request('invoke', { module: 'chat_server', function: 'port', args: [] });
    for (let k = 0; k < 3; k++) {
      const s = connect(port, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      s.write(`name p${k}\n`);
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const out = await c.request('apply', { script, bundle, permanent: true });
    c.close();
    return { order: script.steps.slice(script.pointOfNoReturn + 1).map((s) => `${s.op} ${s.module ?? s.process ?? ''}`.trim()), status: out.status, message: out.message.slice(0, 300) };
  } finally {
    for (const s of sockets) s.destroy();
    node.child.kill('SIGTERM');
    await node.child;
    forget();
  }
}

export async function runRollbackOrder() {
  const dir = await mkdtemp(join(tmpdir(), 'relup-erlang-order-'));
  try {
    await cp(join(REPO, 'examples', 'erlang'), dir, { recursive: true });
    await prepareFailingRelease(dir);
    const plan = await execa('node', [CLI, 'plan', '1.0.0', '1.2.0', '--json'], { cwd: dir });
    await execa('node', [CLI, 'release', 'pack', join('releases', '1.2.0'), '--out-dir', 'bundles'], { cwd: dir });
    const bundle = (await readFile(join(dir, 'bundles', 'chat-1.2.0.tar.gz'))).toString('base64');
    const planned = JSON.parse(plan.stdout);
    const reordered = structuredClone(planned);
    const i = reordered.steps.findIndex((s) => s.op === 'switch' && s.module === 'chat_server');
    const [sw] = reordered.steps.splice(i, 1);
    reordered.steps.splice(reordered.steps.findIndex((s) => s.op === 'migrate') + 1, 0, sw);
    return [await attempt(dir, planned, bundle, 'planned'), await attempt(dir, reordered, bundle, 'reordered')];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith('erlang-rollback-order.js')) {
  try {
    for (const r of await runRollbackOrder()) console.log(`${r.status.padEnd(16)} ${r.order.join(', ')}\n  ${r.message}\n`);
  } finally {
    await runCleanups();
  }
}
