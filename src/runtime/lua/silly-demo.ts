import { chmod, cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { styleText } from 'node:util';
import { main } from '../../cli/main.js';
import type { CommandIo } from '../../cli/io.js';
import { buildSilly, REPO_ROOT } from './silly-build.js';
import { freePort, startSillyNode } from './silly-node.js';

/**
 * `npm run demo -- --runtime silly`: the guide's route, game and config
 * (examples/silly) in a real Silly process with the relup agent, unattended.
 * Upgrade 1.2.2 → 1.2.3 live with one connection kept open and background
 * traffic, check that state survived and new behaviour is on, roll back,
 * check again, stop. Every claim printed is checked; a broken one makes the
 * exit code 1.
 */
export async function runSillyDemo(): Promise<number> {
  const color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;
  const bold = (t: string) => (color ? styleText('bold', t) : t);
  const say = (t: string) => process.stdout.write(`\n${bold(`▶ ${t}`)}\n`);
  const show = (t: string) => process.stdout.write(`  ${t}\n`);
  let broken = 0;
  const check = (ok: boolean, what: string) => {
    show(`${ok ? '✓' : '✗'} ${what}`);
    if (!ok) broken += 1;
  };

  say('Silly, built once from the vendored source (.cache/silly)');
  const tree = await buildSilly(REPO_ROOT, show);
  if (tree === undefined) {
    process.stderr.write('no vendored Silly found: put silly-*.tar.gz in ../shared/vendor next to the clone, or set SILLY_VENDOR\n');
    return 2;
  }
  show(tree.binary);

  const dir = await mkdtemp(join(tmpdir(), 'relup-silly-demo-'));
  await cp(join(REPO_ROOT, 'examples', 'silly', 'releases'), join(dir, 'releases'), { recursive: true });
  await cp(join(REPO_ROOT, 'examples', 'silly', 'appups'), join(dir, 'appups'), { recursive: true });
  const secret = randomBytes(32).toString('base64');
  const secretFile = join(dir, 'secret');
  await writeFile(secretFile, secret, { mode: 0o600 });
  await chmod(secretFile, 0o600);
  // The CLI below reads the secret from RELUP_SECRET (never from the command line).
  process.env['RELUP_SECRET'] = secret;
  const io: CommandIo = { cwd: dir, stdout: process.stdout, stderr: process.stderr, color };
  const relup = async (argv: string[]) => {
    process.stdout.write(`  $ relup ${argv.join(' ')}\n`);
    const code = await main(argv, io);
    if (code !== 0) throw new Error(`relup ${argv[0]} exited ${code}`);
  };

  say('Start a Silly node on silly-demo 1.2.2 (the relup agent inside; TCP control with the HMAC challenge)');
  const apiPort = await freePort();
  const node = await startSillyNode({ silly: tree.binary, release: join(dir, 'releases', '1.2.2'), stateDir: join(dir, 'state'), listen: { host: '127.0.0.1', port: 0 }, secretFile, config: { port: apiPort } });
  show(`${node.notice}; control ${node.address}; the service (tcp_api) on 127.0.0.1:${apiPort}; pid ${node.pid}`);
  const api = new LineClient(apiPort);
  let traffic: Traffic | undefined;
  try {
    await api.ready;
    say('Traffic on 1.2.2, over one connection that stays open throughout');
    show(`route           → ${JSON.stringify(await api.ask({ op: 'route' }))}`);
    show(`route (no name) → ${JSON.stringify(await api.ask({ op: 'route' }))}   (1.2.2 does not check the name)`);
    await api.ask({ op: 'add_player', id: 1, name: 'ann' });
    await api.ask({ op: 'add_player', id: 2, name: 'bob' });
    show(`add_score ann 250 → ${JSON.stringify(await api.ask({ op: 'add_score', id: 1, points: 250 }))}`);
    show(`config_set timeout 90 → ${JSON.stringify(await api.ask({ op: 'config_set', key: 'timeout', value: 90 }))}`);
    traffic = new Traffic(apiPort, 2);
    show('background traffic: a request every 2 ms on a second connection, counting failures');

    say('Plan the upgrade (pure: nothing touches the node)');
    await relup(['plan', '1.2.2', '1.2.3']);
    say('Apply it to the running Silly node');
    await relup(['apply', '--target', node.address, '--to', '1.2.3']);

    say('What survived, and what is new');
    const versions = (await api.ask({ op: 'versions' })) as Record<string, string>;
    check(Object.values(versions).every((v) => v === '1.2.3'), `the open connection reaches 1.2.3's code; each module's VERSION field followed its code: ${JSON.stringify(versions)}`);
    const stats = (await api.ask({ op: 'stats' })) as { total: number; errors: number };
    check(stats.total > 2 && stats.errors === 0, `the access counter kept counting (total ${stats.total}) and gained an error counter (errors ${stats.errors}, a new local reported absent)`);
    const missing = (await api.ask({ op: 'route' })) as { status: number; body: string };
    check(missing.status === 400, `new behaviour: route without a name → ${missing.status} ${missing.body}`);
    const ann = (await api.ask({ op: 'player', id: 1 })) as { score: number; level: number; exp: number };
    check(ann.score === 250 && ann.level === 1 && ann.exp === 0, `players kept their scores and gained level and experience (migration add_levels): ${JSON.stringify(ann)}`);
    const scored = (await api.ask({ op: 'add_score', id: 1, points: 1000 })) as { level: number };
    check(scored.level === 2, `add_exp, new in 1.2.3, works on the live players (silly.patch would give it an empty copy): ${JSON.stringify(scored)}`);
    const config = (await api.ask({ op: 'config_all' })) as Record<string, unknown>;
    check(config['timeout'] === 90 && config['enable_cache'] === true && config['cache_ttl'] === 300, `the changed timeout (90) survived; new keys appeared: ${JSON.stringify(config)}`);
    const bad = (await api.ask({ op: 'config_set', key: 'timeout', value: -1 })) as { ok: boolean };
    check(bad.ok === false, `new validation: config_set timeout -1 → refused`);

    say('Roll back to 1.2.2 through the down path');
    await relup(['rollback', '--target', node.address]);
    const back = (await api.ask({ op: 'route' })) as { status: number; body: string };
    check(back.status === 200, `1.2.2 behaviour again on the same connection: route without a name → ${back.status} ${back.body}`);
    const statsBack = (await api.ask({ op: 'stats' })) as Record<string, unknown>;
    check(typeof statsBack['total'] === 'number' && (statsBack['total'] as number) > stats.total && !('errors' in statsBack), `the counter kept counting and the error counter is gone: ${JSON.stringify(statsBack)}`);
    const annBack = (await api.ask({ op: 'player', id: 1 })) as Record<string, unknown>;
    check(annBack['score'] === 1250 && !('level' in annBack), `players are back to name and score, scores intact: ${JSON.stringify(annBack)}`);
    const configBack = (await api.ask({ op: 'config_all' })) as Record<string, unknown>;
    check(configBack['timeout'] === 90 && !('enable_cache' in configBack), `settings back to 1.2.2's keys, the changed timeout kept: ${JSON.stringify(configBack)}`);

    await traffic.stop();
    say('Figures');
    check(traffic.failed === 0 && traffic.sent > 0, `background traffic: ${traffic.sent} requests across the upgrade and the rollback, ${traffic.failed} failed`);
    check(!api.closed && (await api.ask({ op: 'versions' })) !== undefined, 'the connection opened on 1.2.2 was never dropped, and still answers');
    process.env['RELUP_SECRET'] = secret;
    await relup(['status', '--target', node.address]);
  } catch (e) {
    broken += 1;
    process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
  } finally {
    await traffic?.stop();
    api.close();
    say('Stop the node');
    const code = await node.stop();
    check(code === 0, `the Silly node stopped cleanly (exit ${code})`);
    await rm(dir, { recursive: true, force: true });
  }
  if (broken > 0) {
    process.stdout.write(`\n${broken} check${broken === 1 ? '' : 's'} failed\n`);
    return 1;
  }
  process.stdout.write('\nEvery check passed.\n');
  return 0;
}

/** JSON lines over one TCP connection to the demo's tcp_api. */
class LineClient {
  readonly ready: Promise<void>;
  /** Set when the connection closes: the demo checks the first one never did. */
  closed = false;
  private readonly socket: Socket;
  private buffer = '';
  private readonly waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.ready = new Promise((resolve, reject) => this.socket.once('connect', () => resolve()).once('error', reject));
    this.socket.on('data', (chunk) => {
      this.buffer += chunk.toString('utf8');
      let i;
      while ((i = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, i);
        this.buffer = this.buffer.slice(i + 1);
        this.waiting.shift()?.resolve(JSON.parse(line));
      }
    });
    this.socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w.reject(new Error('the connection closed'));
    });
    this.socket.on('error', () => undefined);
  }

  ask(req: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(`${JSON.stringify(req)}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A request every `everyMs` on its own connection, counting answers that fail. */
class Traffic {
  sent = 0;
  failed = 0;
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(port: number, everyMs: number) {
    const client = new LineClient(port);
    this.loop = (async () => {
      await client.ready;
      while (!this.stopped) {
        this.sent += 1;
        try {
          const r = (await client.ask({ op: 'route', name: 'traffic' })) as { status?: number };
          if (r.status !== 200) this.failed += 1;
        } catch {
          this.failed += 1;
          break;
        }
        await new Promise((r) => setTimeout(r, everyMs));
      }
      client.close();
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith('silly-demo.js')) {
  runSillyDemo().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 2;
    },
  );
}
