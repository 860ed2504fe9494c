import { resolve } from 'node:path';
import { UserError } from '../../errors/errors.js';
import type { CommandIo } from '../../cli/io.js';
import { resolveIn } from '../../project/load-project.js';
import { readPublicKey } from '../../release/bundle-signature.js';
import { erlangAvailable, startErlangNode } from './erlang-driver.js';

/**
 * `relup node start` for a `runtime: erlang` release: boot `erl -noshell`
 * with the relup agent and stay in the foreground until SIGINT or SIGTERM
 * (forwarded to the Erlang node). The node stops by itself if this process
 * dies (it watches its stdin). Dispatched from node-start-command.ts.
 */
interface ErlangStartArgs {
  release?: string;
  socket?: string;
  stateDir?: string;
  listen?: string;
  publicKey?: string;
  states?: string;
}

export async function run(raw: Record<string, unknown>, io: CommandIo, config: Record<string, unknown>, signals: NodeJS.EventEmitter = process): Promise<number> {
  const args = raw as unknown as ErlangStartArgs;
  if (args.socket === undefined) throw new UserError('--socket is required for an Erlang node', 'e.g. relup node start --release releases/1.0.0 --socket run/node.sock');
  if (args.listen !== undefined) throw new UserError('the Erlang agent listens on its Unix socket only; --listen (TCP) is not supported for Erlang nodes yet', 'drop --listen and reach the node through --socket (over ssh for remote nodes)');
  if (args.states !== undefined) throw new UserError('--states (booting with captured states) is not supported for Erlang nodes yet', 'drop --states; relup check --live runs Erlang round trips on the initial state');
  const available = await erlangAvailable();
  if (!available.ok) throw new UserError(`cannot start an Erlang node: ${available.reason}`, available.install);
  const stateDir = resolveIn(io.cwd, args.stateDir ?? '.relup-state');
  const socket = resolve(io.cwd, args.socket);
  const publicKey = args.publicKey === undefined ? undefined : await readPublicKey(resolveIn(io.cwd, args.publicKey));
  const node = await startErlangNode({ ...(args.release === undefined ? {} : { release: resolveIn(io.cwd, args.release) }), socket, stateDir, config, ...(publicKey === undefined ? {} : { publicKey }) });
  io.stdout.write(`erlang node ${node.release.name} running (OTP ${available.version}, pid ${node.pid}); a fresh state directory boots ${node.release.version}, a used one its permanent release\n`);
  io.stdout.write(`  control socket: ${args.socket}\n  state directory: ${stateDir}\n`);
  if (args.publicKey !== undefined) io.stdout.write(`  bundles must be signed by ${args.publicKey}\n`);
  io.stdout.write('  stop with Ctrl-C (SIGINT) or SIGTERM\n');
  const ended = await new Promise<string>((done) => {
    for (const name of ['SIGINT', 'SIGTERM']) signals.once(name, () => done(name));
    void node.child.then(() => done('exit'));
  });
  if (ended === 'exit') {
    io.stderr.write(`the Erlang node exited by itself:\n${node.output()}\n`);
    return 2;
  }
  io.stdout.write(`${ended}: stopping the Erlang node (an upgrade cut short is recorded as interrupted; a restart boots the permanent release)\n`);
  node.child.kill('SIGTERM');
  await node.child;
  io.stdout.write('stopped\n');
  return 0;
}
