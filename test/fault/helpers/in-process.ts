import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApplyParams } from '../../../src/protocol/messages.js';
import { injectFaults, type Fault } from '../../../src/runtime/node-host/fault-injection.js';
import { NodeHost, type HostApplyOutcome } from '../../../src/runtime/node-host/node-host.js';
import { startNode, type RelupNode, type StepContext, type StepPerformer } from '../../../src/runtime/node/relup-node.js';
import type { ReleaseImage } from '../../../src/runtime/node/release-image.js';
import { isRuntimeError } from '../../../src/runtime/node/runtime-error.js';
import type { RelupScript } from '../../../src/script/script-schema.js';
import { bundleOf, canonical, diffStates, releaseDirOf, trafficExpectation, type Direction, type States } from './demo.js';
import type { CellResult, Column } from './matrix.js';
import { heldProblems, http, sendTraffic, trafficProblems, warmUp, TRAFFIC, TRAFFIC_ENTRIES, type EntryCount, type Expectation, type NodeView, type Sent } from './traffic.js';

/** Settings of every node of the matrix: an ephemeral port, and no game clock (its ticks would blur the states compared). */
export const NODE_CONFIG = { port: 0, tickMs: 3_600_000 };

/**
 * The traffic's way into an in-process node: HTTP on its port, and calls,
 * casts and invokes through the node's API for work from outside
 * (`call`, `invoke`), which is held like the control socket's. `entries`:
 * the node's entry counted (spyEntries).
 */
export function viewOfNode(node: RelupNode, port: number, entries?: () => EntryCount): NodeView {
  return {
    port,
    tick: () => node.invoke('game', 'tick', []),
    call: (message) => node.call('game', message),
    invoke: (module, fn, args) => node.invoke(module, fn, args),
    processes: async () => node.status().processes,
    ...(entries === undefined ? {} : { entries }),
  };
}

/**
 * Count the work that reaches the node's entry (`NodeCore.entry`: HTTP
 * requests, timer ticks, `call`, `cast`, `invoke` from outside) and how much
 * of it started to run: held work has arrived and not started. A test's spy
 * on the node's internals (the public status has no such count), checked to
 * exist so that a rename fails loudly instead of counting nothing.
 */
export function spyEntries(node: RelupNode): () => EntryCount {
  const core = (node as unknown as { core?: { entry?: unknown } }).core;
  if (core === undefined || typeof core.entry !== 'function') throw new Error("spyEntries: the node has no core.entry any more; update the matrix's spy");
  const original = (core.entry as (work: () => unknown) => Promise<unknown>).bind(core);
  const count: EntryCount = { arrived: 0, started: 0 };
  core.entry = (work: () => unknown) => {
    count.arrived += 1;
    return original(() => {
      count.started += 1;
      return work();
    });
  };
  return () => ({ ...count });
}

/**
 * The window: run `window` when step `at` starts, before the step (and any
 * fault injected there) runs; `onSettle` when the transaction settles, before
 * the node does (held work is still held then).
 */
export function windowAt(at: number, window: (ctx: StepContext) => Promise<void>, onSettle?: () => void): (performer: StepPerformer) => StepPerformer {
  return (performer) => {
    const around = async (ctx: StepContext, run: () => Promise<void>) => {
      if (ctx.index === at) await window(ctx);
      return run();
    };
    return {
      check: (step, ctx) => around(ctx, () => performer.check(step, ctx)),
      perform: (step, ctx) => around(ctx, () => performer.perform(step, ctx)),
      settle: (result) => {
        onSettle?.();
        return performer.settle(result);
      },
    };
  };
}

/** A node that runs `boot`, warmed up: the starting point of every cell and of its reference. */
async function warmNode(boot: ReleaseImage): Promise<{ node: RelupNode; view: NodeView }> {
  const node = await startNode({ image: boot, config: NODE_CONFIG });
  const view = viewOfNode(node, node.status().servers[0]!.port);
  await warmUp(view);
  return { node, view };
}

/** Send the traffic one message at a time, each answered before the next. */
export async function sendSequentially(view: NodeView): Promise<void> {
  for (const m of TRAFFIC) {
    const r = await m.send(view, () => undefined);
    if (!r.ok) throw new Error(`reference: ${m.label} failed: ${r.detail}`);
  }
}

const referenceCache = new Map<string, Promise<string>>();
/**
 * The states a node that never upgraded ends in: `boot`, the warm-up, then
 * the traffic. What a refused or rolled-back attempt must leave, whether the
 * traffic ran during the step (before the point of no return) or was held
 * and ran after the rollback: either way on the old code and state, once.
 */
export function untouchedReference(boot: ReleaseImage): Promise<string> {
  const key = boot.release.hash;
  let ref = referenceCache.get(key);
  if (ref === undefined) {
    ref = (async () => {
      const { node, view } = await warmNode(boot);
      try {
        await sendSequentially(view);
        await quiet(node);
        return canonical(node.states());
      } finally {
        await node.stop();
      }
    })();
    referenceCache.set(key, ref);
  }
  return ref;
}

export interface InProcessCell {
  direction: Direction;
  step: number;
  column: Column;
  note?: string;
  /** What the node runs before the attempt. */
  boot: ReleaseImage;
  /** The release uploaded with the script. */
  next: ReleaseImage;
  script: RelupScript;
  /** Injected through the RELUP_FAULTS code (injectFaults), at `step`. */
  fault?: Fault;
  deadlineMs?: number;
  /**
   * Keep the game busy in a call of that many ms, sent at the point of no
   * return (before anything is held: it must really run, as a request in
   * flight when an upgrade starts does), so that it is still running when
   * `step` suspends the game.
   */
  busyGameMs?: number;
  expect: { status: 'refused' | 'rolled-back'; code?: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One in-process cell on a NodeHost (the node as `relup node start` runs
 * it, history included, without the control socket): warm up, attempt the
 * script with the fault, send the traffic while the faulty step is in
 * progress — handled at once before the point of no return, held at the
 * node's entry after it — then check every invariant.
 */
export async function runInProcessCell(cell: InProcessCell): Promise<CellResult> {
  // A cell whose window closed before its traffic reached the node (the transaction's deadline passed first, on a
  // loaded machine) tested nothing: it is run again, at most twice, and says so; still inconclusive, it fails.
  const reruns: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const result = await runInProcessCellOnce(cell);
    if (result.inconclusive === undefined) return reruns.length === 0 ? result : { ...result, note: `${result.note === undefined ? '' : `${result.note}; `}run ${attempt} times: ${reruns.join('; ')}` };
    reruns.push(result.inconclusive);
    if (attempt === 3) return { ...result, problems: [...result.problems, `inconclusive ${attempt} times: ${reruns.join('; ')}`] };
  }
}

async function runInProcessCellOnce(cell: InProcessCell): Promise<CellResult & { inconclusive?: string }> {
  const problems: string[] = [];
  let inconclusive: string | undefined;
  const stateDir = await mkdtemp(join(tmpdir(), 'relup-fault-host-'));
  const faults = cell.fault === undefined ? undefined : injectFaults(new Map([[cell.step, cell.fault]]), { log: () => undefined });
  const expectation = trafficExpectation(cell.script, cell.step);
  let sent: Sent | undefined;
  let busy: Promise<unknown> | undefined;
  let host: NodeHost | undefined;
  let entries: (() => EntryCount) | undefined;
  let params: ApplyParams | undefined;
  let windowOpenedAt: number | undefined;
  let settledAt: number | undefined;
  const busyWindow = async (): Promise<void> => {
    const h = host!;
    busy = h.node.call('game', { type: 'sleep', ms: cell.busyGameMs });
    const handling = () => h.node.status().processes.find((p) => p.name === 'game')?.handling === true;
    const end = Date.now() + 2000;
    while (!handling() && Date.now() < end) await sleep(1);
    if (!handling()) problems.push('the long call sent at the point of no return did not reach the game process (held before the point of no return?)');
  };
  const window = async (ctx: StepContext): Promise<void> => {
    const h = host!;
    windowOpenedAt = performance.now();
    sent = sendTraffic(viewOfNode(h.node, h.status().servers[0]!.port, entries), expectation);
    const landed = await sent.landed;
    if (ctx.signal.aborted) {
      inconclusive = `the transaction gave up on step ${cell.step} before the traffic reached the node`;
      return;
    }
    if (landed !== undefined) problems.push(landed);
    problems.push(...heldProblems(sent, 'during the step'));
    if (!h.status().upgrading) problems.push('status does not say upgrading during the step');
    // Past the deadline the transaction is being wound down: a second apply could land after it and run for real.
    if (ctx.signal.aborted) return;
    const second = await h.apply(params!).then(
      (o) => `answered ${o.status}`,
      (e: unknown) => (isRuntimeError(e, 'busy') ? 'busy' : String(e)),
    );
    if (second !== 'busy') problems.push(`a second apply during the step was not refused as busy: ${second}`);
  };
  const onSettle = (): void => {
    settledAt = performance.now();
    if (sent !== undefined) problems.push(...heldProblems(sent, 'before the transaction settled'));
  };
  try {
    host = await NodeHost.start({
      release: await releaseDirOf(cell.boot),
      stateDir,
      config: NODE_CONFIG,
      log: () => undefined,
      intercept: (performer) => {
        const cellWindow = windowAt(cell.step, window, onSettle)(faults?.(performer) ?? performer);
        return cell.busyGameMs === undefined ? cellWindow : windowAt(cell.script.pointOfNoReturn, busyWindow)(cellWindow);
      },
    });
    entries = spyEntries(host.node);
    const view = viewOfNode(host.node, host.status().servers[0]!.port);
    await warmUp(view);
    const before = host.node.states() as States;
    params = { script: cell.script, bundle: await bundleOf(cell.next), dryRun: false, permanent: true, ...(cell.deadlineMs === undefined ? {} : { deadlineMs: cell.deadlineMs }) };
    const outcome = await host.apply(params);
    const windowMs = windowOpenedAt !== undefined && settledAt !== undefined ? settledAt - windowOpenedAt : undefined;
    problems.push(...outcomeProblems(outcome, cell, expectation, windowMs));
    if (sent === undefined) problems.push(`step ${cell.step} never started`);
    const results = sent === undefined ? [] : await withTimeout(sent.settled, 5000, 'the traffic was not answered within 5 s');
    const counted = sent?.entries();
    if (counted !== undefined && (counted.arrived !== TRAFFIC_ENTRIES || counted.started !== TRAFFIC_ENTRIES)) {
      problems.push(`${counted.arrived} requests and calls reached the node's entry and ${counted.started} ran, for ${TRAFFIC_ENTRIES} sent`);
    }
    await busy?.catch(() => undefined);
    await quiet(host.node);
    const after = host.node.states() as States;
    problems.push(...trafficProblems(before, after, results));
    const expected = await untouchedReference(cell.boot);
    if (canonical(after) !== expected) problems.push(...diffStates(JSON.parse(expected), after).map((d) => `state: ${d}`).slice(0, 4));
    problems.push(...runningProblems(host.status(), cell.boot));
    problems.push(...(await servingProblems(view.port, cell.boot.release.version)));
    problems.push(...historyProblems(host.status().history, outcome, cell));
    return { direction: cell.direction, step: cell.step, column: cell.column, outcome: outcome.status, problems, held: expectation === 'held', ...(cell.note === undefined ? {} : { note: cell.note }), ...(inconclusive === undefined ? {} : { inconclusive }) };
  } catch (e) {
    return { direction: cell.direction, step: cell.step, column: cell.column, outcome: 'error', problems: [`the cell could not run: ${e instanceof Error ? e.stack : String(e)}`] };
  } finally {
    await host?.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

function outcomeProblems(outcome: HostApplyOutcome, cell: InProcessCell, expectation: Expectation, windowMs: number | undefined): string[] {
  const problems: string[] = [];
  if (outcome.status !== cell.expect.status) problems.push(`outcome ${outcome.status} (expected ${cell.expect.status}): ${outcome.message}`);
  if (outcome.failure?.step?.index !== cell.step) problems.push(`the failure is reported at step ${outcome.failure?.step?.index ?? '(none)'}, not ${cell.step}: ${outcome.failure?.message ?? ''}`);
  if (cell.expect.code !== undefined && outcome.failure?.code !== cell.expect.code) problems.push(`failure code ${outcome.failure?.code ?? '(none)'} (expected ${cell.expect.code})`);
  if (cell.expect.status === 'rolled-back' && outcome.rollback?.complete !== true) problems.push(`rollback incomplete: ${JSON.stringify(outcome.rollback)}`);
  if (cell.expect.status === 'refused' && outcome.rollback !== undefined) problems.push(`a refusal reports a rollback: ${JSON.stringify(outcome.rollback)}`);
  if (outcome.version !== cell.boot.release.version) problems.push(`outcome says the node runs ${outcome.version}`);
  // Messages number steps from 1, like the plan and the history.
  if (!outcome.message.includes(`step ${cell.step + 1} (`)) problems.push(`the message does not name step ${cell.step + 1}: ${outcome.message}`);
  if (cell.expect.status === 'rolled-back' && !outcome.message.includes(`rolled back to ${cell.boot.release.version}`)) problems.push(`the message does not say it rolled back to ${cell.boot.release.version}: ${outcome.message}`);
  // holdMs: point of no return → settle. Nothing is held by a refusal; a held window lasts until the transaction settles.
  if (outcome.status === 'refused' && outcome.holdMs !== null) problems.push(`a refusal reports holdMs ${outcome.holdMs}`);
  if (expectation === 'held' && (outcome.holdMs === null || windowMs === undefined || outcome.holdMs < windowMs)) {
    problems.push(`holdMs ${outcome.holdMs === null ? 'null' : outcome.holdMs.toFixed(1)} does not cover the held window (${windowMs?.toFixed(1) ?? '?'} ms from the traffic to the settle)`);
  }
  return problems;
}

interface StatusLike {
  version: string;
  hash: string;
  upgrading: boolean;
  modules: { name: string; hash: string; version: string }[];
  processes: { name: string; suspended: boolean; mailbox: number }[];
}

/** Exactly one release runs — every module of `image` at its hash, nothing else — nothing is suspended, no upgrade is running. */
export function runningProblems(status: StatusLike, image: ReleaseImage): string[] {
  const problems: string[] = [];
  const { release } = image;
  if (status.version !== release.version || status.hash !== release.hash) problems.push(`runs ${status.version} (${status.hash.slice(0, 8)}), expected ${release.version} (${release.hash.slice(0, 8)})`);
  // By content: a module that did not change keeps the version label of the release it was first loaded from.
  const want = release.modules.map((m) => `${m.name}:${m.hash.slice(0, 12)}`).sort();
  const have = status.modules.map((m) => `${m.name}:${m.hash.slice(0, 12)}`).sort();
  if (want.join() !== have.join()) problems.push(`modules ${have.join(', ')} are not exactly release ${release.version}'s`);
  const names = release.processes.map((p) => p.name).sort();
  if (status.processes.map((p) => p.name).sort().join() !== names.join()) problems.push(`processes ${status.processes.map((p) => p.name).join(', ') || '(none)'}, expected ${names.join(', ')}`);
  for (const p of status.processes) if (p.suspended) problems.push(`process ${p.name} is left suspended (or dead)`);
  if (status.upgrading) problems.push('status still says upgrading');
  return problems;
}

/** The node answers HTTP with the code of `version`. */
export async function servingProblems(port: number, version: string): Promise<string[]> {
  try {
    const v = await http(port, 'GET', '/version', undefined, 5000);
    if (v.status !== 200 || v.text !== version) return [`GET /version answered ${v.status} ${v.text}, expected ${version}`];
    const players = await http(port, 'GET', '/players/p1', undefined, 5000);
    if (players.status !== 200) return [`GET /players/p1 answered ${players.status} ${players.text}: the game process does not serve`];
    return [];
  } catch (e) {
    return [`not serving HTTP: ${e instanceof Error ? e.message : String(e)}`];
  }
}

interface HistoryEventLike {
  op: string;
  from?: string;
  to: string;
  status: string;
  failedStep?: string;
}

function historyProblems(history: HistoryEventLike[], outcome: HostApplyOutcome, cell: InProcessCell): string[] {
  const last = history.at(-1);
  const want = { op: 'apply', from: cell.script.from.version, to: cell.script.to.version, status: outcome.status };
  if (last === undefined || last.op !== want.op || last.from !== want.from || last.to !== want.to || last.status !== want.status) {
    return [`history's last event is ${JSON.stringify(last)}, expected ${JSON.stringify(want)}`];
  }
  // The history numbers steps from 1, like the outcome's message and the plan.
  if (!last.failedStep?.startsWith(`${cell.step + 1} `)) return [`history names the failed step "${last.failedStep ?? ''}", expected "${cell.step + 1} …" (step index ${cell.step})`];
  return [];
}

/** Wait until no process has work (a backlog handled after a resume). */
export async function quiet(node: RelupNode, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && node.status().processes.some((p) => !p.suspended && (p.mailbox > 0 || p.handling))) await new Promise((r) => setTimeout(r, 2));
}

export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}

/** Run `tasks` with at most `limit` at a time, results in order. */
export async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}
