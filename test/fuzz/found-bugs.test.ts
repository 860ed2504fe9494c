import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_FILE } from '../../src/config/config-schema.js';
import { loadConfig, resolveTarget, type LoadedConfig } from '../../src/config/load-config.js';
import { ConfigError, UserError } from '../../src/errors/errors.js';
import { encodeFrame, FrameDecoder } from '../../src/protocol/framing.js';
import { releaseFromFiles } from '../../src/release/release-from-files.js';
import { tarGz } from '../../src/release/tar-writer.js';
import { ControlServer } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { demoFiles, planScript, demoImage } from '../runtime/helpers/release-image.js';
import { parseConfig } from '../../src/config/load-config.js';

/**
 * The bugs the fuzzers found, one small deterministic test each, named
 * BUG(<id>) as in docs/fuzzing.md ("Bugs found"), which gives the fix. Each
 * fails until its fix is in; the fuzz properties fail on the same bugs.
 */

/** Four levels of nine aliases: 6,561 leaves from 40 lines, past yaml's alias limit of 100. */
const ALIAS_BOMB = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';

function releaseYaml(text: string) {
  return releaseFromFiles({ files: new Map([['release.yaml', Buffer.from(text)]]), kind: 'dir', origin: 'releases/x' });
}

describe('bugs found by fuzzing', { timeout: 20_000 }, () => {
  it('BUG(yaml-alias-throws): release.yaml and relup.config.yaml with an alias bomb or an unresolved alias give a diagnostic, not an exception', async () => {
    const inStart = `name: demo\nversion: 1.2.3\nruntime: node\nmodules: {}\nstart:\n${ALIAS_BOMB.replace(/^/gm, '  ').trimEnd()}\n`;
    for (const text of [ALIAS_BOMB, inStart, '<<: *nowhere\n']) {
      let result: ReturnType<typeof releaseYaml> | undefined;
      expect(() => (result = releaseYaml(text)), JSON.stringify(text)).not.toThrow();
      expect(result!.value).toBeUndefined();
      expect(result!.diagnostics.map((d) => d.code)).toContain('release-invalid');
      expect(result!.diagnostics.every((d) => d.line !== undefined)).toBe(true);

      expect(() => parseConfig(text, CONFIG_FILE)).not.toThrow();
      const dir = await mkdtemp(join(tmpdir(), 'relup-bug-'));
      try {
        await writeFile(join(dir, CONFIG_FILE), text);
        const error = await loadConfig(dir).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).diagnostics.map((d) => d.code)).toContain('config-invalid');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  });

  it('BUG(config-proto-target): defaultTarget or --target naming an Object.prototype member is not a configured target', () => {
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const config = parseConfig(`defaultTarget: ${JSON.stringify(name)}\n`, CONFIG_FILE).value!;
      expect(config).toBeDefined();
      const loaded: LoadedConfig = { config, baseDir: '/work/project', file: undefined };
      // Today: { kind: 'tcp', host: undefined, port: undefined }, which then fails somewhere in net.connect.
      expect(() => resolveTarget(loaded, undefined), `defaultTarget: ${name}`).toThrow(UserError);
      expect(() => resolveTarget({ ...loaded, config: {} }, name), `--target ${name}`).toThrow(UserError);
    }
  });

  it('BUG(release-yaml-quadratic): reading a release.yaml with thousands of modules takes about linear time, valid or not', () => {
    /** Least CPU time of three reads (a ratio of CPU times, never an absolute wall-clock bound). */
    const time = (n: number, entry: (i: number) => string) => {
      const files = new Map<string, Buffer>();
      for (let i = 0; i < n; i++) files.set(`m${i}.js`, Buffer.from(`exports.f = () => ${i};\n`));
      const text = `name: big\nversion: 1.0.0\nruntime: node\nmodules:\n${Array.from({ length: n }, (_, i) => `  m${i}: ${entry(i)}`).join('\n')}\n`;
      files.set('release.yaml', Buffer.from(text));
      let ms = Infinity;
      let result: ReturnType<typeof releaseFromFiles> | undefined;
      for (let k = 0; k < 3; k++) {
        const cpu = process.cpuUsage();
        result = releaseFromFiles({ files, kind: 'dir', origin: 'releases/big' });
        const d = process.cpuUsage(cpu);
        ms = Math.min(ms, (d.user + d.system) / 1000);
      }
      return { ms, result: result! };
    };
    // Every module was located with a linear search of the map (YamlSource.locate): quadratic, about 5 s at 4,000 modules.
    const valid = (n: number) => time(n, (i) => `{ file: m${i}.js, deps: [m${(i + 1) % n}] }`);
    const v1 = valid(1_000);
    const v4 = valid(4_000);
    expect(v4.result.value?.modules).toHaveLength(4_000);
    expect(v4.ms / Math.max(v1.ms, 5)).toBeLessThan(8);
    // Plus, per finding, a "did you mean" against every module name and a hint listing them all.
    const broken = (n: number) => time(n, (i) => `{ file: m${i}.js, deps: [nope${i}] }`);
    const b1 = broken(500);
    const b4 = broken(2_000);
    expect(b4.result.diagnostics.filter((d) => d.code === 'release-dep-unknown')).toHaveLength(2_000);
    expect(b4.ms / Math.max(b1.ms, 5)).toBeLessThan(8);
  }, 120_000);

  it('BUG(config-proto-target-dropped): a target named __proto__ is refused, not silently dropped (found by prototype-keys.fuzz)', () => {
    const result = parseConfig('defaultTarget: local\ntargets:\n  local: {socket: run/a.sock}\n  __proto__: {host: 127.0.0.1, port: 7070}\n', CONFIG_FILE);
    // Before: accepted, with targets = { local } — zod's record assigned __proto__ as the prototype.
    expect(result.value).toBeUndefined();
    expect(result.diagnostics.map((d) => [d.code, d.line])).toEqual([['yaml-reserved-key', 4]]);
  });
});

describe('bugs found by fuzzing the live control server', { timeout: 20_000 }, () => {
  let dir: string;
  let host: NodeHost;
  let server: ControlServer;
  let socket: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'relup-bug-server-'));
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
    socket = join(dir, 'run', 'node.sock');
    server = await ControlServer.listen(host, { socket });
  }, 30_000);

  afterAll(async () => {
    await server?.close();
    await host?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function client() {
    const sock: Socket = createConnection({ path: socket });
    await new Promise((r) => sock.once('connect', r));
    const decoder = new FrameDecoder();
    const frames: Record<string, unknown>[] = [];
    let closed = false;
    sock.on('data', (c: Buffer) => frames.push(...(decoder.push(c) as Record<string, unknown>[])));
    sock.on('close', () => (closed = true));
    sock.on('error', () => undefined);
    const answer = async (id: number) => {
      for (let i = 0; i < 500; i++) {
        const found = frames.find((f) => f['id'] === id && f['type'] !== 'event');
        if (found !== undefined) return found;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no answer to ${id}`);
    };
    return { sock, frames, answer, closed: () => closed };
  }

  const rawFrame = (text: string) => {
    const body = Buffer.from(text);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    return Buffer.concat([head, body]);
  };
  const hello = encodeFrame({ type: 'hello', protocol: 2, client: 'bug' });
  const player = (id: string) => host.node.call('game', { type: 'get_player', id });

  it('BUG(apply-bundle-yaml-internal): an uploaded bundle whose release.yaml is an alias bomb is refused, not answered `internal`', async () => {
    const bundle = await tarGz([['release.yaml', Buffer.from(ALIAS_BOMB)], ...[...demoFiles('1.2.3')].filter(([p]) => p !== 'release.yaml')]);
    const c = await client();
    c.sock.write(Buffer.concat([hello, encodeFrame({ type: 'request', id: 1, op: 'apply', params: { script: planScript(demoImage('1.2.2'), demoImage('1.2.3')), bundle: bundle.toString('base64') } })]));
    const answer = await c.answer(1);
    c.sock.destroy();
    // Today: { type: 'error', code: 'internal', message: 'Excessive alias count indicates a resource exhaustion attack' }.
    expect(answer).toMatchObject({ type: 'result', result: { status: 'refused', failure: { code: 'bundle-invalid' } } });
    expect(host.status().version).toBe('1.2.2');
  });

  it('BUG(protocol-after-fatal): after bad_frame the node reads nothing more from that connection', async () => {
    const c = await client();
    // An invalid frame, then a hello and a call: a node that "closes the connection" must not run the call.
    // The padding makes the stream span several reads, as any large upload does.
    const call = encodeFrame({ type: 'request', id: 2, op: 'call', params: { process: 'game', message: { type: 'add_player', id: 'after-fatal', name: 'ghost' } } });
    c.sock.write(Buffer.concat([rawFrame('{not json'), hello, call, rawFrame(JSON.stringify({ pad: 'x'.repeat(200_000) }))]));
    for (let i = 0; i < 200 && !c.closed(); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    expect(c.frames[0]).toMatchObject({ type: 'error', id: null, code: 'bad_frame' });
    // Today the player exists: the frames after the bad one were still decoded and handled.
    expect(await player('after-fatal')).toBeNull();
  });

  it('BUG(protocol-deep-json): a frame nested 10,000 deep is refused, instead of answers `internal` and a node that can no longer copy its state or upgrade', async () => {
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const c = await client();
    c.sock.write(Buffer.concat([hello, rawFrame(`{"type":"request","id":1,"op":"call","params":{"process":"game","message":{"type":"add_player","id":"deep","name":${deep}}}}`)]));
    for (let i = 0; i < 100 && !c.closed() && !c.frames.some((f) => f['id'] === 1); i++) await new Promise((r) => setTimeout(r, 10));
    c.sock.destroy();
    // Today: { id: 1, code: 'internal', message: 'Maximum call stack size exceeded' }, the value is stored in the game's state,
    // `states` answers `internal` from then on and every upgrade rolls back at its first switch ("Maximum call stack size exceeded").
    expect(c.frames.filter((f) => f['code'] === 'internal')).toEqual([]);
    const d = await client();
    d.sock.write(Buffer.concat([hello, encodeFrame({ type: 'request', id: 3, op: 'states', params: {} })]));
    expect(await d.answer(3)).toMatchObject({ type: 'result' });
    d.sock.destroy();
  });
});
