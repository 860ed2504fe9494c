import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isRuntimeError } from '../../src/runtime/node/runtime-error.js';
import { REPO } from '../helpers/repo-paths.js';
import { boot, until } from './helpers/demo-node.js';
import { demoImage, imageFromFiles, planScript } from './helpers/release-image.js';

function release(version: string, modules: Record<string, string>, extra = ''): ReturnType<typeof imageFromFiles> {
  const yaml = [`name: t`, `version: ${version}`, `runtime: node`, `start: { main: main }`, `modules:`, ...Object.keys(modules).map((m) => `  ${m}: { file: ${m}.js }`), extra].join('\n');
  return imageFromFiles({ 'release.yaml': yaml, ...Object.fromEntries(Object.entries(modules).map(([m, src]) => [`${m}.js`, src])) });
}

describe('the module API', () => {
  test('require allows Node built-ins only, with a clear error otherwise', async () => {
    const { node } = await boot(
      release('1.0.0', {
        main: `
          const { createHash } = require('node:crypto');
          const path = require('path');
          exports.digest = (s) => createHash('sha256').update(s).digest('hex').slice(0, 8) + path.sep;
          exports.sneaky = (id) => require(id);`,
      }),
    );
    expect(node.module('main').digest!('x')).toBe('2d711642/');
    expect(() => node.module('main').sneaky!('./secrets.js')).toThrow(/only Node.js built-in modules/);
    expect(() => node.module('main').sneaky!('yaml')).toThrow(expect.objectContaining({ code: 'require-denied' }));
  });

  test('relup.module binds late; unknown modules and functions give clear errors; awaiting a handle is safe', async () => {
    const { node } = await boot(
      release('1.0.0', {
        main: `
          const other = relup.module('other');
          exports.viaHandle = () => other.answer();
          exports.missingModule = () => relup.module('nope').run();
          exports.missingFunction = () => other.nope();
          exports.awaitHandle = async () => (await relup.module('other')) === relup.module('other');`,
        other: 'exports.answer = () => 42;',
      }),
    );
    const main = node.module('main');
    expect(main.viaHandle!()).toBe(42);
    expect(() => main.missingModule!()).toThrow(/module "nope" is not loaded in t@1.0.0/);
    expect(() => main.missingFunction!()).toThrow(/other.nope is not a function in other@1.0.0/);
    expect(await main.awaitHandle!()).toBe(true);
  });

  test('side effects are refused at the top level of a module (staging must change nothing)', async () => {
    const top = release('1.0.0', { main: "relup.setInterval(10, 'main', 'tick');\nexports.tick = () => {};" });
    await expect(boot(top)).rejects.toThrow(/relup.setInterval cannot be used at the top level of main@1.0.0/);
    const state = release('1.0.0', { main: 'const s = relup.state;' });
    await expect(boot(state)).rejects.toMatchObject({ code: 'compile-error' });
  });

  test('HTTP: a handler that throws is a 500 with its message; bad responses too; the node keeps serving', async () => {
    const { http, logs } = await boot(
      release(
        '1.0.0',
        {
          main: `
          exports.start = () => relup.listen({ port: relup.config.port, handler: 'handle' });
          exports.handle = async (req) => {
            if (req.url === '/boom') throw new Error('boom at ' + req.url);
            if (req.url === '/bad') return 42;
            if (req.url === '/echo') return { status: 201, json: { got: await req.json(), method: req.method }, headers: { 'x-relup': 'yes' } };
            relup.log('served', req.url);
            return { status: 200, body: 'ok' };
          };`,
        },
      ),
    );
    const boom = await http.get('/boom');
    expect(boom).toMatchObject({ status: 500, text: 'boom at /boom' });
    expect((await http.get('/bad')).status).toBe(500);
    expect(await http.post('/echo', { a: 1 })).toMatchObject({ status: 201, json: { got: { a: 1 }, method: 'POST' } });
    expect((await http.get('/fine')).text).toBe('ok');
    expect(logs).toContainEqual(expect.objectContaining({ level: 'info', source: 'module', module: 'main', message: 'served /fine' }));
  });

  test('timers: setTimeout fires once, clearTimer stops an interval, timer args are data only', async () => {
    const { node, logs } = await boot(
      release('1.0.0', {
        main: `
          exports.initialState = () => ({ hits: [], id: 0 });
          exports.start = () => {
            relup.setTimeout(5, 'main', 'hit', 'once');
            relup.state.id = relup.setInterval(5, 'main', 'hit', 'again');
          };
          exports.hit = (what) => { relup.state.hits.push(what); if (relup.state.hits.length >= 4) relup.clearTimer(relup.state.id); };
          exports.withFunction = () => relup.setTimeout(5, 'main', 'hit', () => 1);
          exports.missing = () => relup.setTimeout(1, 'main', 'nope');`,
      }),
    );
    await until(() => node.status().timers.length === 0);
    const hits = (node.states().modules['main'] as { hits: string[] }).hits;
    expect(hits.filter((h) => h === 'once')).toHaveLength(1);
    expect(hits).toHaveLength(4);
    expect(() => node.module('main').withFunction!()).toThrow(/must be data/);
    node.module('main').missing!();
    await until(() => logs.some((l) => l.source === 'timer'));
    expect(logs.find((l) => l.source === 'timer')!.message).toMatch(/main.nope is not a function/);
  });

  test('brutal purge cuts the old version off from the node; soft purge waits for its handlers', async () => {
    const appup = (purge: string) => `version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - load: main\n        purge: ${purge}\ndown:\n  - to: 1.0.0\n    instructions:\n      - load: main\n`;
    const src = (n: number) => `
      exports.initialState = () => ({ n: 0, waiting: false });
      exports.start = () => relup.listen({ port: relup.config.port, handler: 'handle' });
      exports.handle = async (req) => {
        if (req.url === '/slow') {
          relup.state.waiting = true;
          await new Promise((r) => setTimeout(r, 300));
        }
        relup.state.n += ${n};
        return { status: 200, body: String(relup.state.n) };
      };`;
    const v1 = release('1.0.0', { main: src(1) });
    const v2 = release('1.0.1', { main: src(100) });

    const soft = await boot(v1);
    const slowSoft = soft.http.get('/slow');
    await until(() => (soft.node.states().modules['main'] as { waiting: boolean }).waiting);
    const t0 = performance.now();
    expect((await soft.node.applyScript(planScript(v1, v2, appup('soft'), '1.0.1'), v2)).status).toBe('committed');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(30);
    expect((await slowSoft).text).toBe('1');

    const brutal = await boot(v1);
    const slowBrutal = brutal.http.get('/slow');
    await until(() => (brutal.node.states().modules['main'] as { waiting: boolean }).waiting);
    expect((await brutal.node.applyScript(planScript(v1, v2, appup('brutal'), '1.0.1'), v2)).status).toBe('committed');
    const cut = await slowBrutal;
    expect(cut.status).toBe(500);
    expect(cut.text).toMatch(/main@1.0.0 was purged/);
  });

  test('boot fails cleanly: a release for another runtime, a port in use', async () => {
    const img = demoImage('1.2.2');
    await expect(boot({ ...img, release: { ...img.release, runtime: 'lua' } })).rejects.toSatisfy((e) => isRuntimeError(e, 'invalid-release'));
    const { port } = await boot(img);
    await expect(boot(img, { port })).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('the complete example of docs/runtime-node.md', () => {
  const doc = readFileSync(join(REPO, 'docs', 'runtime-node.md'), 'utf8');
  const block = (after: string, lang: string): string => {
    const start = doc.indexOf(`\`\`\`${lang}\n`, doc.indexOf(after));
    return doc.slice(start + lang.length + 4, doc.indexOf('```', start + 3));
  };

  test('boots, serves, and upgrades with the migration the page describes', async () => {
    const files = { 'release.yaml': block('`releases/1.0.0/release.yaml`', 'yaml'), 'tally.js': block('`releases/1.0.0/tally.js`', 'js'), 'web.js': block('`releases/1.0.0/web.js`', 'js') };
    const v100 = imageFromFiles(files);
    const addPaths = doc.match(/`(exports\.addPaths = .*?;)`/)![1]!;
    const v101 = imageFromFiles({
      ...files,
      'release.yaml': files['release.yaml'].replace('version: 1.0.0', 'version: 1.0.1').replace('initialState, flush]', 'initialState, flush, addPaths]'),
      'tally.js': `${files['tally.js']}\n${addPaths}\n`,
    });
    const { node, http } = await boot(v100);
    expect((await http.get('/hit')).json).toEqual({ hits: 1 });
    expect((await http.get('/hit')).json).toEqual({ hits: 2 });
    await node.module('tally').flush!();
    expect(node.states().modules['tally']).toEqual({ flushed: 2 });
    const appup = 'version: 1.0.1\nup:\n  - from: 1.0.0\n    instructions:\n      - update: tally\n        migration: addPaths\ndown:\n  - to: 1.0.0\n    instructions:\n      - update: tally\n';
    const outcome = await node.applyScript(planScript(v100, v101, appup, '1.0.1'), v101);
    expect(outcome.status, outcome.message).toBe('committed');
    expect(node.states()).toEqual({ modules: { tally: { flushed: 2 }, web: {} }, processes: { tally: { hits: 0, step: 1, paths: {} } } });
    expect((await http.get('/hit')).json).toEqual({ hits: 1 });
  });
});
