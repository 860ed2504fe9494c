import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { styleText } from 'node:util';
import { startScratchNode } from '../client/scratch-node.js';
import { main } from '../cli/main.js';
import type { CommandIo } from '../cli/io.js';
import type { HostStatus } from '../runtime/node-host/node-host.js';
import { ChatMember } from './demo-chat.js';
import { DemoHttp, Traffic } from './demo-http.js';

/**
 * `npm run demo`: the bundled demo, unattended, explaining as it goes. A real
 * node process runs the demo service on 1.2.2 with traffic and an open
 * connection; relup plans and applies 1.2.3 live, shows that nothing was lost,
 * rolls back, and stops the node. Every claim it prints is checked; a broken
 * promise ends the demo with exit code 1.
 */
// `npm run demo -- --runtime silly`: the same story on a Lua node in Silly (src/runtime/lua/silly-demo.ts).
const runtimeFlag = process.argv.indexOf('--runtime');
if (runtimeFlag >= 0 && ['silly', 'lua'].includes(process.argv[runtimeFlag + 1] ?? '')) {
  process.exit(await (await import('../runtime/lua/silly-demo.js')).runSillyDemo());
}
// `npm run demo -- --runtime erlang`: the Erlang demo (examples/erlang/, src/runtime/erlang/erlang-demo.ts).
if (runtimeFlag >= 0 && process.argv[runtimeFlag + 1] === 'erlang') {
  process.exit(await (await import('../runtime/erlang/erlang-demo.js')).runErlangDemo());
}
const repo = fileURLToPath(new URL('../..', import.meta.url));
const color = process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined;
const io: CommandIo = { cwd: repo, stdout: process.stdout, stderr: process.stderr, color };
const bold = (t: string) => (color ? styleText('bold', t) : t);
const say = (t: string) => process.stdout.write(`\n${bold(`▶ ${t}`)}\n`);
const show = (t: string) => process.stdout.write(`  ${t}\n`);
let broken = 0;
const check = (ok: boolean, what: string) => {
  show(`${ok ? '✓' : '✗'} ${what}`);
  if (!ok) broken += 1;
};

async function relup(argv: string[]): Promise<void> {
  process.stdout.write(`  $ relup ${argv.join(' ')}\n`);
  const code = await main(argv, io);
  if (code !== 0) throw new Error(`relup ${argv[0]} exited ${code}`);
}

say('Start a node on demo 1.2.2 (a real child process: relup node start)');
const node = await startScratchNode(join(repo, 'releases', '1.2.2'), { tickMs: 200 });
const connection = await node.connect();
const status = async () => (await connection.request('status', {})) as HostStatus;
const port = (await status()).servers[0]!.port;
show(`control socket ${node.socket}; the service listens on 127.0.0.1:${port}`);
const http = new DemoHttp(port);
const get = async (path: string) => (await http.send('GET', path)).body;
let ada: ChatMember | undefined;
let grace: ChatMember | undefined;

try {
  say('Traffic on 1.2.2, over one keep-alive connection that stays open throughout');
  const first = await http.send('GET', '/hello?name=ada');
  show(`GET /hello?name=ada  → ${first.body}   (connection :${first.connection})`);
  show(`GET /hello           → ${(await http.send('GET', '/hello')).body}   (1.2.2 does not check the name)`);
  await http.send('POST', '/players', { id: 'p1', name: 'Ada' });
  await http.send('POST', '/players', { id: 'p2', name: 'Grace' });
  show(`POST /players/p1/score 250 → ${(await http.send('POST', '/players/p1/score', { points: 250 })).body}`);
  show(`PUT /config/timeout 90     → ${(await http.send('PUT', '/config/timeout', { value: 90 })).body}`);
  show(`GET /config               → ${await get('/config')}`);
  ada = await ChatMember.join(port, 'ada');
  grace = await ChatMember.join(port, 'grace');
  ada.say('hello from 1.2.2');
  const hello122 = await grace.next((m) => m.includes('hello from 1.2.2'));
  show(`chat room: two WebSockets open (ada, grace); ada says hello → grace receives ${JSON.stringify(hello122)}`);
  const traffic = new Traffic(port, 2);
  show('background traffic: a request every 2 ms on a second connection, counting failures');

  say('Plan the upgrade (pure: nothing touches the node)');
  await relup(['plan', '1.2.2', '1.2.3']);

  say('Apply it to the running node');
  await relup(['apply', '--target', node.socket, '--to', '1.2.3']);
  const up = (await status()).history.at(-1)!;

  say('What survived, and what is new');
  const stats = JSON.parse(await get('/stats')) as { total: number; errors: number };
  const hello = await http.send('GET', '/hello?name=grace');
  check(hello.connection === first.connection, `the connection opened on 1.2.2 (:${first.connection}) answers on 1.2.3: ${hello.body}`);
  check(stats.total > 2 && stats.errors === 0, `the access counter kept counting (total ${stats.total}) and gained an error counter (errors ${stats.errors})`);
  const missing = await http.send('GET', '/hello');
  check(missing.status === 400, `new behaviour: GET /hello without a name → ${missing.status} ${missing.body}`);
  const p1 = JSON.parse(await get('/players/p1')) as { score: number; level: number; exp: number };
  check(p1.score === 250 && p1.level >= 1 && typeof p1.exp === 'number', `players kept their scores and gained level and experience: ${JSON.stringify(p1)}`);
  const config = JSON.parse(await get('/config')) as Record<string, unknown>;
  check(config['timeout'] === 90 && config['enable_cache'] === true && config['cache_ttl'] === 300, `the changed timeout (90) survived; new keys appeared: ${JSON.stringify(config)}`);
  const bad = await http.send('PUT', '/config/timeout', { value: -1 });
  check(bad.status === 400, `new validation: PUT /config/timeout -1 → ${bad.status} ${bad.body}`);
  const mark = ada.received.length;
  grace.say('hi from the same socket');
  const hi123 = await ada.next((m) => m.includes('hi from the same socket'), mark);
  const parsed = (() => { try { return JSON.parse(hi123) as { seq?: number; from?: string; text?: string }; } catch { return undefined; } })();
  check(!ada.closed && !grace.closed && parsed?.from === 'grace' && typeof parsed.seq === 'number', `the chat sockets opened on 1.2.2 stayed open and now speak 1.2.3's JSON: ${hi123}`);
  const members = JSON.parse(await get('/chat')) as string[];
  check(members.join(',') === 'ada,grace', `the chat room kept its members across the upgrade: ${JSON.stringify(members)}`);
  const expBefore = p1.exp;
  await new Promise((r) => setTimeout(r, 700));
  const p1Later = JSON.parse(await get('/players/p1')) as { exp: number; level: number };
  check(p1Later.exp + p1Later.level * 1000 > expBefore + p1.level * 1000, `the game clock started by 1.2.2 now runs 1.2.3's tick: experience ${expBefore} → ${p1Later.exp} without scoring`);

  say('Roll back to 1.2.2 through the down path');
  await relup(['rollback', '--target', node.socket]);
  const down = (await status()).history.at(-1)!;
  const back = await http.send('GET', '/hello');
  check(back.status === 200 && back.connection === first.connection, `1.2.2 behaviour again on the same connection: GET /hello → ${back.status} ${back.body}`);
  const markBack = grace.received.length;
  ada.say('back on 1.2.2');
  const back122 = await grace.next((m) => m.includes('back on 1.2.2'), markBack);
  check(!ada.closed && !grace.closed && back122 === 'ada: back on 1.2.2', `the same chat sockets are still open and speak 1.2.2's plain text again: ${JSON.stringify(back122)}`);
  const statsBack = JSON.parse(await get('/stats')) as Record<string, unknown>;
  check(typeof statsBack['total'] === 'number' && !('errors' in statsBack), `the counter kept counting and the 1.2.3 error counter is gone: ${JSON.stringify(statsBack)}`);
  const p1Back = JSON.parse(await get('/players/p1')) as Record<string, unknown>;
  check(p1Back['score'] === 250 && !('level' in p1Back), `players are back to name and score, scores intact: ${JSON.stringify(p1Back)}`);
  const configBack = JSON.parse(await get('/config')) as Record<string, unknown>;
  check(configBack['timeout'] === 90 && !('enable_cache' in configBack), `settings back to 1.2.2's keys, the changed timeout kept: ${JSON.stringify(configBack)}`);

  await traffic.stop();
  say('Figures');
  check(traffic.failed === 0, `background traffic: ${traffic.sent} requests across the upgrade and the rollback, ${traffic.failed} failed`);
  const windows = (e: typeof up) => Object.entries(e.suspensionMs ?? {}).map(([g, ms]) => `group ${g}: ${ms === null ? 'no suspension' : `${ms.toFixed(2)} ms`}`).join(', ');
  show(`upgrade 1.2.2 → 1.2.3 took ${up.durationMs} ms on the node; suspension windows: ${windows(up)}`);
  show(`rollback 1.2.3 → 1.2.2 took ${down.durationMs} ms on the node; suspension windows: ${windows(down)}`);
} finally {
  ada?.close();
  grace?.close();
  http.close();
  connection.close();
  say('Stop the node');
  await node.stop();
  show('stopped cleanly');
}

if (broken > 0) {
  process.stdout.write(`\n${broken} check${broken === 1 ? '' : 's'} failed\n`);
  process.exitCode = 1;
} else {
  process.stdout.write('\nEvery check passed.\n');
}
