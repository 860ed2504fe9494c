import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { Connection } from '../../src/client/connection.js';
import { APPLY_STATUSES, stepEventSchema } from '../../src/protocol/apply-outcome.js';
import { OPS } from '../../src/protocol/messages.js';
import { statusResultSchema } from '../../src/protocol/status-result.js';
import { bundleBytes } from '../../src/release/bundle-bytes.js';
import { ControlServer } from '../../src/runtime/node-host/control-server.js';
import { NodeHost } from '../../src/runtime/node-host/node-host.js';
import type { ReleaseImage } from '../../src/runtime/node/release-image.js';
import type { RelupScript } from '../../src/script/script-schema.js';
import { DEMO, scriptOf, throwingMigrationPair, UP } from '../fault/helpers/demo.js';
import { DEMO_RELEASES } from '../helpers/repo-paths.js';
import { testdir } from '../helpers/testdir.js';

/**
 * The results a real node sends follow the schemas docs/protocol.md and
 * docs/schema/protocol.schema.json publish, for every op and every apply
 * outcome we can provoke: a third runtime can be written against them.
 */
const open: { host: NodeHost; server: ControlServer }[] = [];
afterEach(async () => {
  for (const { host, server } of open.splice(0)) {
    await server.close();
    await host.stop();
  }
});

function follows<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new Error(`${what} does not follow its schema: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n${JSON.stringify(value).slice(0, 2000)}`);
  return parsed.data;
}

async function bundleOf(image: ReleaseImage): Promise<string> {
  return (await bundleBytes(image.release, image.files)).bytes.toString('base64');
}

describe('the results of a real node follow the published schemas', { timeout: 60_000 }, () => {
  it('status, states, call, invoke, make_permanent, and apply: dry-run, rolled-back, committed, noop, refused', async () => {
    const dir = await testdir();
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    const host = await NodeHost.start({ release: join(DEMO_RELEASES, '1.2.2'), stateDir: join(dir, 'state'), config: { port: 0, tickMs: 3_600_000 } });
    const socket = join(dir, 'run', 'node.sock');
    open.push({ host, server: await ControlServer.listen(host, { socket }) });
    const c = await Connection.open({ kind: 'unix', path: socket });
    const seen = new Set<string>();
    const apply = async (script: RelupScript, image: ReleaseImage, extra: Record<string, unknown> = {}) => {
      const events: unknown[] = [];
      const result = await c.request('apply', { script, bundle: await bundleOf(image), ...extra }, (e) => events.push(e));
      for (const e of events) follows(stepEventSchema, e, 'an apply event');
      const outcome = follows(OPS.apply.result, result, `the ${script.from.version} → ${script.to.version} outcome`);
      seen.add(outcome.status);
      return outcome;
    };

    follows(statusResultSchema, await c.request('status', {}), 'status');
    follows(OPS.call.result, await c.request('call', { process: 'game', message: { type: 'add_player', id: 'a', name: 'A' } }), 'call');
    expect(await c.request('invoke', { module: 'config', function: 'get', args: ['timeout'] })).toBe(30);
    follows(OPS.states.result, await c.request('states', {}), 'states');

    expect((await apply(UP, DEMO.v123, { dryRun: true })).status).toBe('dry-run');
    const broken = throwingMigrationPair('game', 'addLevels');
    const rolled = await apply(scriptOf(broken, 'up'), broken.v123);
    expect(rolled.status).toBe('rolled-back');
    expect(rolled.rollback?.complete).toBe(true);
    expect((await apply(UP, DEMO.v123, { permanent: false })).status).toBe('committed');
    expect((await apply(UP, DEMO.v123)).status).toBe('noop');
    const down = scriptOf(DEMO, 'down');
    expect((await apply({ ...down, from: { ...down.from, version: '9.9.9' } }, DEMO.v122)).status).toBe('refused');
    expect(follows(OPS.make_permanent.result, await c.request('make_permanent', { version: '1.2.3' }), 'make_permanent')).toEqual({ permanent: '1.2.3' });

    const status = follows(statusResultSchema, await c.request('status', {}), 'status after upgrades');
    expect(status).toMatchObject({ version: '1.2.3', permanent: '1.2.3', upgrading: false });
    expect(status.history.map((e) => e.status)).toEqual(expect.arrayContaining(['booted', 'rolled-back', 'committed', 'ok']));
    expect([...seen].sort()).toEqual(APPLY_STATUSES.filter((s) => s !== 'rollback-failed').sort());
    c.close();
  });
});
