/**
 * Issue 10: "a code_change that crashes rolls back in place with byte-identical
 * state and the connection open", on the demo itself — a gen_server (game)
 * beside plain processes (the TCP service's index and connection actors,
 * seed 002) in one suspend group.
 *
 * The plain processes run chat_server's code and move only at their next
 * fully-qualified call. Had chat_server switched before game's migration, a
 * failing migration would leave them in code that only a purge (which kills
 * them) could make old again, and the rollback would end rollback-failed.
 * The planner switches such modules after the group's migrations; this test
 * fails on the order that switched them first.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Connection } from '../../../src/client/connection.js';
import { startErlangNode, type ErlangNode } from '../../../src/runtime/erlang/erlang-driver.js';
import { REPO } from '../../helpers/repo-paths.js';
import { runCli } from '../../helpers/run-cli.js';
import { erlangGate } from './erlang-gate.js';
import { testdir } from '../../helpers/testdir.js';

const ok = await erlangGate('Erlang runtime tests (test/runtime/erlang)');

const nodes: ErlangNode[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const n of nodes.splice(0)) {
    n.child.kill('SIGKILL');
    await n.child.catch(() => undefined);
  }
});

/** The demo with a 1.2.0: 1.1.0 whose game:code_change/3 raises going up. */
async function demoWithFailingRelease(): Promise<string> {
  const dir = await testdir({});
  await cp(join(REPO, 'examples', 'erlang'), dir, { recursive: true });
  const to = join(dir, 'releases', '1.2.0');
  await cp(join(dir, 'releases', '1.1.0'), to, { recursive: true });
  const game = await readFile(join(to, 'game.erl'), 'utf8');
  const marker = 'code_change({down, _Vsn}';
  expect(game).toContain(marker);
  await writeFile(join(to, 'game.erl'), game.replace(marker, `code_change(OldVsn, _S, _Extra) when not is_tuple(OldVsn) -> erlang:error({failing_code_change, OldVsn});\n${marker}`));
  const yaml = await readFile(join(to, 'release.yaml'), 'utf8');
  expect(yaml).toMatch(/^version: 1\.1\.0$/m);
  await writeFile(join(to, 'release.yaml'), yaml.replace(/^version: 1\.1\.0$/m, 'version: 1.2.0'));
  const appup = await readFile(join(dir, 'appups', '1.1.0.yaml'), 'utf8');
  await writeFile(join(dir, 'appups', '1.2.0.yaml'), appup.replace(/^version: 1\.1\.0$/m, 'version: 1.2.0'));
  return dir;
}

/** One line in, one line out, on a client connection of the demo's TCP service. */
function ask(socket: Socket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      const nl = got.indexOf('\n');
      if (nl < 0) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(got.slice(0, nl));
    };
    const onClose = () => reject(new Error(`connection closed while waiting for the answer to "${line}"`));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`${line}\n`);
  });
}

describe.runIf(ok)('Erlang: a failing code_change beside plain processes', { timeout: 120_000 }, () => {
  it('rolls back in place: game state byte-identical, every connection open and on 1.0.0 behaviour', async () => {
    const dir = await demoWithFailingRelease();
    const socket = join(dir, 'node.sock');
    const node = await startErlangNode({ release: join(dir, 'releases', '1.0.0'), socket, stateDir: join(dir, 'state'), config: { port: 0 } });
    nodes.push(node);
    const control = await Connection.open({ kind: 'unix', path: socket });
    try {
      const port = (await control.request('invoke', { module: 'chat_server', function: 'port', args: [] })) as number;
      for (let k = 0; k < 3; k++) {
        const s = connect(port, '127.0.0.1');
        await new Promise((r) => s.once('connect', r));
        sockets.push(s);
        expect(await ask(s, `name p${k}`)).toBe('ok');
        expect(await ask(s, `score ${k + 1}`)).toBe(`score ${k + 1}`);
      }
      const before = await control.request('states', {});

      // The planner's own script, through the CLI: exit 1, rolled back.
      const r = await runCli(['apply', '--target', socket, '--to', '1.2.0', '--json'], dir);
      expect(r.exitCode, r.stderr).toBe(1);
      const outcome = JSON.parse(r.stdout) as { status: string; failure?: { step?: { op: string; target: string } }; journal: { op: string; target: string }[] };
      expect(outcome.status).toBe('rolled-back');
      expect(outcome.failure?.step).toMatchObject({ op: 'migrate', target: expect.stringContaining('game') });
      // chat_server had not switched yet when the migration failed: that is why nothing had to be purged.
      const ran = outcome.journal.map((s) => `${s.op} ${s.target}`);
      expect(ran).not.toContain('switch chat_server');

      expect(await control.request('states', {})).toEqual(before);
      const status = (await control.request('status', {})) as { version: string; modules: { name: string; version: string }[] };
      expect(status.version).toBe('1.0.0');
      expect(status.modules.find((m) => m.name === 'chat_server')?.version).toBe('1.0.0');
      // Every connection is the one opened before, still answering, with its score.
      for (let k = 0; k < 3; k++) expect(await ask(sockets[k]!, 'player')).toBe(`score ${k + 1}`);
    } finally {
      control.close();
    }
  });
});
