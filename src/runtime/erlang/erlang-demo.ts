import { cp, mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Connection } from '../../client/connection.js';
import { erlangAvailable, startErlangNode } from './erlang-driver.js';

/**
 * `npm run demo -- --runtime erlang`: the Erlang demo (examples/erlang/),
 * unattended. A real Erlang node runs the seed-002 TCP service (a registered
 * index actor, one actor per connection) and a gen_server holding the game's
 * players; one connection stays open and short connections keep coming.
 * relup applies 1.1.0 live and rolls back to 1.0.0. Every claim printed is
 * checked; a broken one ends the demo with exit code 1.
 */
const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const CLI = join(REPO, 'dist', 'cli', 'main.js');

/** A line-protocol client on one TCP connection: send a line, get the reply line. */
class LineClient {
  private buffer = '';
  private waiting: ((line: string) => void)[] = [];
  closed = false;
  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      let i: number;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 1);
        this.waiting.shift()?.(line);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => (this.closed = true));
  }
  static open(port: number): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => resolve(new LineClient(s)));
      s.once('error', reject);
    });
  }
  send(line: string, timeoutMs = 10_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to "${line}"`)), timeoutMs);
      this.waiting.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.socket.write(`${line}\n`);
    });
  }
  close(): void {
    this.socket.end();
  }
}

/** Short connections, one after another: each pings once. Counts what failed. */
class Traffic {
  ok = 0;
  failed = 0;
  private running = true;
  private done: Promise<void>;
  constructor(port: number) {
    this.done = this.loop(port);
  }
  private async loop(port: number): Promise<void> {
    while (this.running) {
      try {
        const c = await LineClient.open(port);
        const reply = await c.send('ping', 5000);
        if (reply.startsWith('pong')) this.ok += 1;
        else this.failed += 1;
        c.close();
      } catch {
        this.failed += 1;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

export async function runErlangDemo(): Promise<number> {
  const say = (t: string) => process.stdout.write(`\n▶ ${t}\n`);
  const show = (t: string) => process.stdout.write(`  ${t}\n`);
  let broken = 0;
  const check = (ok: boolean, what: string) => {
    show(`${ok ? '✓' : '✗'} ${what}`);
    if (!ok) broken += 1;
  };
  const available = await erlangAvailable();
  if (!available.ok) {
    process.stderr.write(`the Erlang demo needs Erlang/OTP: ${available.reason}\n  install it with: ${available.install}\n`);
    return 2;
  }
  const dir = await mkdtemp(join(tmpdir(), 'relup-erlang-demo-'));
  let node: Awaited<ReturnType<typeof startErlangNode>> | undefined;
  try {
    await cp(join(REPO, 'examples', 'erlang', 'releases'), join(dir, 'releases'), { recursive: true });
    await cp(join(REPO, 'examples', 'erlang', 'appups'), join(dir, 'appups'), { recursive: true });
    const socket = join(dir, 'node.sock');
    const relup = async (args: string[]) => {
      show(`$ relup ${args.join(' ')}`);
      const r = await execa('node', [CLI, ...args, '--target', socket, '--json'], { cwd: dir, reject: false, stdin: 'ignore' });
      const json = JSON.parse(r.stdout || '{}') as { hops?: { outcome: Outcome }[] } & Outcome;
      return { exitCode: r.exitCode, outcome: json.hops?.at(-1)?.outcome ?? json, stderr: r.stderr };
    };

    say(`Start an Erlang node (OTP ${available.version}) on chat 1.0.0: erl -noshell with the relup agent`);
    node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state'), config: { port: 0 } });
    const control = await Connection.open({ kind: 'unix', path: socket });
    const port = (await control.request('invoke', { module: 'chat_server', function: 'port', args: [] })) as number;
    show(`node pid ${node.pid}, TCP service on 127.0.0.1:${port}, control socket ${socket}`);

    say('Open a connection that stays open, play a little, start background traffic');
    const ada = await LineClient.open(port);
    check((await ada.send('name ada')) === 'ok', 'ada is connected');
    check((await ada.send('ping')) === 'pong', '1.0.0 answers ping with "pong"');
    check((await ada.send('score 250')) === 'score 250', 'ada scored 250 (1.0.0 shows the score only)');
    const traffic = new Traffic(port);
    await new Promise((r) => setTimeout(r, 300));

    say('Apply 1.1.0 live (the node evaluates the script; the game gen_server is suspended, migrated by code_change/3 and resumed)');
    const up = await relup(['apply', '--to', '1.1.0']);
    show(up.outcome.message ?? up.stderr);
    check(up.exitCode === 0 && up.outcome.status === 'committed', 'the upgrade committed');
    const upGroup = up.outcome.groups?.find((g) => g.processes.includes('game'));
    show(`suspension window of the game group: ${upGroup?.suspensionMs?.toFixed(2)} ms; whole transaction: ${up.outcome.durationMs?.toFixed(1)} ms; staging: ${stagingMs(up.outcome)} ms`);
    check(typeof upGroup?.suspensionMs === 'number', 'the game process was suspended for a measured window');
    check(!ada.closed && (await ada.send('ping')) === 'pong from 1.1.0, ada', 'the open connection survived and its actor runs 1.1.0 code ("pong from 1.1.0, ada")');
    check((await ada.send('player')) === 'score 250, level 3', "ada's score survived and code_change gave her level 3");
    const upStates = (await control.request('states', {})) as { processes: { game: { players: Record<string, unknown> } } };
    check(JSON.stringify(upStates.processes.game.players) === '{"ada":{"level":3,"score":250}}', 'the game state changed shape through code_change (sys:get_state shows level)');
    check((await ada.send('count')).length > 0, 'the index actor still answers (it moved to 1.1.0 through its code_change message)');

    say('Roll back to 1.0.0 (the down path: code_change({down, "1.0.0"}, …) runs in the 1.1.0 code, then the old code returns)');
    const down = await relup(['rollback']);
    show(down.outcome.message ?? down.stderr);
    check(down.exitCode === 0 && down.outcome.status === 'committed' && down.outcome.version === '1.0.0', 'the node runs 1.0.0 again');
    const downGroup = down.outcome.groups?.find((g) => g.processes.includes('game'));
    show(`suspension window of the game group: ${downGroup?.suspensionMs?.toFixed(2)} ms; whole transaction: ${down.outcome.durationMs?.toFixed(1)} ms; staging: ${stagingMs(down.outcome)} ms`);
    check(!ada.closed && (await ada.send('ping')) === 'pong', 'the same connection answers with 1.0.0 behaviour ("pong")');
    check((await ada.send('player')) === 'score 250', "ada's score is intact and her level is gone (1.0.0's shape)");

    await traffic.stop();
    say('Background traffic through both upgrades');
    show(`${traffic.ok} short connections answered, ${traffic.failed} failed`);
    check(traffic.ok > 0 && traffic.failed === 0, 'no request failed and no connection was refused during the upgrade and the rollback');
    const status = (await control.request('status', {})) as { version: string; permanent: string; processes: { suspended: boolean }[]; history: { status: string }[] };
    check(status.version === '1.0.0' && status.permanent === '1.0.0' && status.processes.every((p) => !p.suspended), 'status: 1.0.0 running and permanent, nothing suspended');
    ada.close();
    control.close();
  } catch (e) {
    show(`✗ the demo stopped: ${(e as Error).message}`);
    broken += 1;
  } finally {
    if (node !== undefined) {
      node.child.kill('SIGTERM');
      await node.child;
    }
    await rm(dir, { recursive: true, force: true });
  }
  say(broken === 0 ? 'Every claim above was checked and holds.' : `${broken} claim(s) did not hold.`);
  return broken === 0 ? 0 : 1;
}

interface Outcome {
  status?: string;
  message?: string;
  version?: string;
  durationMs?: number;
  groups?: { processes: string[]; suspensionMs: number | null }[];
  journal?: { op: string; durationMs: number }[];
}

/** The time the node spent staging the new code (the `stage` steps: load the bundle's .beam, or compile, then prepare_loading). */
function stagingMs(outcome: Outcome): string {
  return (outcome.journal ?? []).filter((e) => e.op === 'stage').reduce((sum, e) => sum + e.durationMs, 0).toFixed(2);
}
