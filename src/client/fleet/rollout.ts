import semver from 'semver';
import type { Appup } from '../../appup/appup-model.js';
import type { Diagnostic } from '../../diagnostics/diagnostic.js';
import { findPath } from '../../planner/find-path.js';
import type { Catalog } from '../../release/release-catalog.js';
import type { Connection } from '../connection.js';
import { remoteStatus, type RemoteOutcome, type RemoteStatus } from '../upgrade.js';
import { upgradeAlongPath, type PathUpgrade } from '../upgrade-path.js';
import { checkHealth, type HealthCheck } from './health-check.js';
import { planWaves, type Wave } from './waves.js';

/** One node of a fleet: how to reach it. Each connect() opens its own authenticated channel. */
export interface FleetMember {
  name: string;
  /** Where the node's HTTP service answers (for an HTTP health check). */
  host: string;
  connect(): Promise<Connection>;
}

export type FailurePolicy = 'rollback' | 'leave';

export interface RolloutOptions {
  members: FleetMember[];
  catalog: Catalog;
  appups: ReadonlyMap<string, Appup>;
  releasesDir?: string;
  /** Target version; undefined: the newest release in the catalog. */
  to: string | undefined;
  canary: number;
  waveSize: number;
  concurrency: number;
  onFailure: FailurePolicy;
  health?: HealthCheck;
  /** Keep each node's new release not permanent for this long, checking health every `intervalMs`. */
  soakMs?: number;
  intervalMs: number;
  deadlineMs?: number;
  onEvent?: (event: FleetEvent) => void;
}

/**
 * How a node ended:
 * - `committed`: upgraded, healthy, permanent (after its soak, if any);
 * - `unchanged`: already ran the target;
 * - `failed`: its upgrade failed and the node rolled it back in place (or refused it): it runs `from`;
 * - `unhealthy`: committed but its health check failed (no soak): it runs `to` unless reverted;
 * - `reverted`: upgraded in this rollout, then taken back to `from` (halt policy, or a failed soak);
 * - `revert-failed`: that downgrade did not complete; `version` says what it runs;
 * - `lost`: the control channel dropped during its upgrade; `version` is what it reported afterwards;
 * - `unreachable`: could not be reached before the rollout;
 * - `not-started`: the rollout halted or was refused before this node.
 */
export type NodeOutcome = 'committed' | 'unchanged' | 'failed' | 'unhealthy' | 'reverted' | 'revert-failed' | 'lost' | 'unreachable' | 'not-started';

export interface NodeRow {
  node: string;
  wave: number | null;
  from: string | null;
  to: string;
  outcome: NodeOutcome;
  /** The release the node runs at the end, as last seen (null: never reached). */
  version: string | null;
  /** Whether `version` is also the node's permanent release (what a restart boots), as last seen. */
  permanent: string | null;
  /** The longest suspension window of its upgrade (ms), null when nothing was suspended. */
  suspensionMs: number | null;
  durationMs: number;
  detail: string;
}

export interface WaveTiming {
  index: number;
  kind: Wave['kind'];
  nodes: string[];
  durationMs: number;
  ok: boolean;
}

export interface RolloutResult {
  ok: boolean;
  /** Refused before anything changed (a node unreachable or busy, a plan that fails, a dry run that fails). */
  refused: boolean;
  halted: boolean;
  to: string;
  rows: NodeRow[];
  waves: WaveTiming[];
  totalMs: number;
  diagnostics: Diagnostic[];
}

export type FleetEvent =
  | { type: 'preflight'; node: string; ok: boolean; version?: string; detail: string }
  | { type: 'plan'; from: string; to: string; path: string[] }
  | { type: 'refused'; reason: string }
  | { type: 'wave-start'; wave: number; kind: Wave['kind']; nodes: string[] }
  | { type: 'node-start'; wave: number; node: string; from: string; to: string }
  | { type: 'health'; node: string; ok: boolean; detail: string; soak: boolean }
  | { type: 'soak-start'; node: string; deadline: string; durationMs: number }
  | { type: 'node-done'; row: NodeRow }
  | { type: 'wave-done'; wave: number; ok: boolean; durationMs: number }
  | { type: 'halt'; reason: string; policy: FailurePolicy }
  | { type: 'revert-start'; node: string; from: string; to: string; why: string }
  | { type: 'revert-done'; row: NodeRow };

interface Seen {
  member: FleetMember;
  status: RemoteStatus;
  /**
   * The node already runs the target but it is not permanent (a soak whose
   * client went away, an apply --no-permanent): finish the job — health check,
   * soak, make_permanent — instead of calling it unchanged.
   */
  resume?: boolean;
}

const now = () => performance.now();

/**
 * `relup apply --fleet`: verify every node, then upgrade a canary, then waves,
 * each wave only after the previous one committed and passed its health
 * check; halt at the first failure and, by policy, roll back the nodes this
 * rollout upgraded or leave them. Never abandons an upgrade in flight: the
 * other nodes of a failing wave finish (or roll back) before the halt.
 */
export async function rollout(options: RolloutOptions): Promise<RolloutResult> {
  const started = now();
  const emit = options.onEvent ?? (() => undefined);
  const to = options.to ?? [...options.catalog.releases.keys()].sort(semver.rcompare)[0] ?? '';
  const rows = new Map<string, NodeRow>(options.members.map((m) => [m.name, { node: m.name, wave: null, from: null, to, outcome: 'not-started', version: null, permanent: null, suspensionMs: null, durationMs: 0, detail: '' }]));
  const result = (extra: Partial<RolloutResult>): RolloutResult => ({
    ok: false,
    refused: false,
    halted: false,
    to,
    rows: options.members.map((m) => rows.get(m.name)!),
    waves: [],
    totalMs: now() - started,
    diagnostics: [],
    ...extra,
  });
  const refuse = (reason: string, diagnostics: Diagnostic[] = []): RolloutResult => {
    emit({ type: 'refused', reason });
    return result({ refused: true, diagnostics });
  };

  // 1. Preflight: every node answers, none is busy, each runs a release we can plan from. Nothing changes here.
  const seen: Seen[] = [];
  const preflight = await mapLimit(options.members, Math.max(options.concurrency, 4), async (member) => {
    try {
      const c = await member.connect();
      try {
        const status = await remoteStatus(c);
        return { member, status };
      } finally {
        c.close();
      }
    } catch (e) {
      return { member, error: (e as Error).message };
    }
  });
  for (const p of preflight) {
    const row = rows.get(p.member.name)!;
    if ('error' in p) {
      Object.assign(row, { outcome: 'unreachable', detail: p.error ?? 'unreachable' });
      emit({ type: 'preflight', node: p.member.name, ok: false, detail: row.detail });
      continue;
    }
    Object.assign(row, { from: p.status.version, version: p.status.version, permanent: p.status.permanent });
    const busy = p.status.upgrading ? 'an upgrade is running on it' : undefined;
    emit({ type: 'preflight', node: p.member.name, ok: busy === undefined, version: p.status.version, detail: busy ?? `runs ${p.status.version}` });
    if (busy !== undefined) row.detail = busy;
    seen.push({ member: p.member, status: p.status });
  }
  const unreachable = [...rows.values()].filter((r) => r.outcome === 'unreachable');
  if (unreachable.length > 0) return refuse(`${unreachable.map((r) => r.node).join(', ')} unreachable before the rollout; nothing was changed`);
  const busy = seen.filter((s) => s.status.upgrading);
  if (busy.length > 0) return refuse(`${busy.map((s) => s.member.name).join(', ')} already upgrading; nothing was changed`);
  if (options.catalog.releases.get(to) === undefined) return refuse(`release ${to} is not in ${options.catalog.dir}`);

  // 2. One plan per source version (nodes on the same release get the same path).
  const pending: Seen[] = [];
  const planned = new Map<string, string[]>();
  for (const s of seen) {
    const row = rows.get(s.member.name)!;
    if (s.status.version === to && s.status.permanent === to) {
      Object.assign(row, { outcome: 'unchanged', detail: `already runs ${to}` });
      continue;
    }
    if (s.status.version === to) {
      Object.assign(row, { from: s.status.permanent, detail: `runs ${to}, not permanent (${s.status.permanent} is)` });
      pending.push({ ...s, resume: true });
      continue;
    }
    const from = options.catalog.releases.get(s.status.version);
    if (from === undefined || from.hash !== s.status.hash) {
      return refuse(`${s.member.name} runs ${s.status.version}${from === undefined ? `, which is not in ${options.catalog.dir}` : ' with a hash that differs from the local copy'}; nothing was changed`);
    }
    if (!planned.has(from.version)) {
      const route = findPath({ from, to: options.catalog.releases.get(to)!, releases: options.catalog.releases.values(), appups: options.appups });
      if (route.path === undefined) return refuse(`cannot plan ${from.version} → ${to} (for ${s.member.name}); nothing was changed`, route.diagnostics);
      planned.set(from.version, route.path);
      emit({ type: 'plan', from: from.version, to, path: route.path });
    }
    pending.push(s);
  }

  // 3. A dry run on every node: the checks before the point of no return, on the node itself.
  const dry = await mapLimit(pending.filter((s) => s.resume !== true), Math.max(options.concurrency, 4), async (s) => {
    try {
      const c = await s.member.connect();
      try {
        const r = await upgradeAlongPath({ connection: c, catalog: options.catalog, appups: options.appups, ...(options.releasesDir === undefined ? {} : { releasesDir: options.releasesDir }), to, dryRun: true, permanent: false });
        const ok = r.kind === 'path' ? r.ok : r.kind === 'applied' ? r.outcome.ok : r.kind === 'noop';
        const why = r.kind === 'path' ? (r.hops.at(-1)?.outcome?.message ?? '') : r.kind === 'applied' ? r.outcome.message : r.kind === 'plan-failed' ? r.diagnostics.map((d) => d.message).join('; ') : '';
        return { s, ok, why };
      } finally {
        c.close();
      }
    } catch (e) {
      return { s, ok: false, why: (e as Error).message };
    }
  });
  const failedDry = dry.filter((d) => !d.ok);
  if (failedDry.length > 0) return refuse(`the dry run failed on ${failedDry.map((d) => `${d.s.member.name} (${d.why})`).join(', ')}; nothing was changed`);

  // 4. Canary, then waves.
  const waves = planWaves(
    pending.map((s) => s.member.name),
    { canary: options.canary, waveSize: options.waveSize },
  );
  const byName = new Map(pending.map((s) => [s.member.name, s]));
  const timings: WaveTiming[] = [];
  let halt: string | undefined;
  for (const wave of waves) {
    const waveStart = now();
    emit({ type: 'wave-start', wave: wave.index, kind: wave.kind, nodes: wave.nodes });
    for (const n of wave.nodes) rows.get(n)!.wave = wave.index;
    let waveFailed = false;
    await mapLimit(wave.nodes, options.concurrency, async (name) => {
      // Once a node of this wave failed, the ones not started yet stay untouched.
      if (waveFailed) return;
      const s = byName.get(name)!;
      emit({ type: 'node-start', wave: wave.index, node: name, from: s.resume === true ? s.status.permanent : s.status.version, to });
      const row = await upgradeNode(s, to, options, emit);
      Object.assign(rows.get(name)!, row, { wave: wave.index });
      emit({ type: 'node-done', row: rows.get(name)! });
      if (row.outcome !== 'committed') {
        waveFailed = true;
        halt ??= `${name}: ${row.outcome}${row.detail === '' ? '' : ` (${row.detail})`}`;
      }
    });
    const durationMs = now() - waveStart;
    timings.push({ index: wave.index, kind: wave.kind, nodes: wave.nodes, durationMs, ok: !waveFailed });
    emit({ type: 'wave-done', wave: wave.index, ok: !waveFailed, durationMs });
    if (waveFailed) break;
  }

  if (halt !== undefined) {
    emit({ type: 'halt', reason: halt, policy: options.onFailure });
    if (options.onFailure === 'rollback') {
      // Every node this rollout moved off its release goes back, through the down path, made permanent again.
      const moved = [...rows.values()].filter((r) => r.from !== null && r.version !== null && r.version !== r.from && r.outcome !== 'unchanged');
      await mapLimit(moved, options.concurrency, async (row) => {
        const s = byName.get(row.node)!;
        emit({ type: 'revert-start', node: row.node, from: row.version!, to: row.from!, why: `halt policy rollback (${halt})` });
        Object.assign(row, await revertNode(s, row.from!, options, `rolled back by the halt policy after ${halt}`, row));
        emit({ type: 'revert-done', row });
      });
    }
  }
  const ok = halt === undefined;
  return result({ ok, halted: !ok, waves: timings });
}

/** Upgrade one node, check its health, soak it; the row says how it ended. */
async function upgradeNode(s: Seen, to: string, options: RolloutOptions, emit: (e: FleetEvent) => void): Promise<Partial<NodeRow>> {
  const started = now();
  // A resumed node runs `to` already; the release to go back to is its permanent one.
  const from = s.resume === true ? s.status.permanent : s.status.version;
  const done = (row: Partial<NodeRow>): Partial<NodeRow> => ({ from, durationMs: now() - started, ...row });
  let connection: Connection;
  try {
    connection = await s.member.connect();
  } catch (e) {
    return done({ outcome: 'lost', detail: `cannot connect: ${(e as Error).message}`, version: s.status.version });
  }
  try {
    const soaking = options.soakMs !== undefined && options.soakMs > 0;
    let suspensionMs: number | null = null;
    let hops = 0;
    let version = to;
    if (s.resume !== true) {
      let r;
      try {
        r = await upgradeAlongPath({
          connection,
          catalog: options.catalog,
          appups: options.appups,
          ...(options.releasesDir === undefined ? {} : { releasesDir: options.releasesDir }),
          to,
          dryRun: false,
          // During a soak the new release is not permanent: a restart boots the old one.
          permanent: !soaking,
          ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }),
        });
      } catch (e) {
        // The channel dropped mid-upgrade: the node finishes or rolls back on its own; ask it where it ended.
        const after = await settledStatus(s.member, (options.deadlineMs ?? 30_000) + 10_000);
        return done({ outcome: 'lost', detail: `control channel lost during the upgrade (${(e as Error).message}); ${after === undefined ? 'the node did not answer afterwards' : `it runs ${after.version} (permanent ${after.permanent})`}`, version: after?.version ?? null, permanent: after?.permanent ?? null });
      }
      const outcomes: RemoteOutcome[] = r.kind === 'applied' ? [r.outcome] : r.kind === 'path' ? r.hops.flatMap((h) => (h.outcome === undefined ? [] : [h.outcome])) : [];
      suspensionMs = maxSuspension(outcomes);
      hops = outcomes.length;
      if (r.kind === 'noop') return done({ outcome: 'unchanged', version: from, detail: r.message });
      if (r.kind === 'plan-failed') return done({ outcome: 'failed', version: from, detail: r.diagnostics.map((d) => d.message).join('; ') });
      const committed = r.kind === 'path' ? r.ok : r.outcome.ok;
      version = r.kind === 'path' ? r.version : r.outcome.version;
      if (!committed) {
        const last = r.kind === 'path' ? r.hops.at(-1)?.outcome : r.outcome;
        return done({ outcome: 'failed', version, suspensionMs, detail: `${last?.status ?? 'failed'}: ${last?.failure?.message ?? last?.message ?? ''}${describePath(r)}` });
      }
    }
    const permanent = soaking ? from : to;

    if (options.health !== undefined) {
      const h = await checkHealth(options.health, connection, s.member.host);
      emit({ type: 'health', node: s.member.name, ok: h.ok, detail: h.detail, soak: false });
      if (!h.ok) {
        if (soaking) return { ...(await revertNode(s, from, options, `health check failed: ${h.detail}`, { to, version })), durationMs: now() - started, suspensionMs };
        return done({ outcome: 'unhealthy', version, permanent, suspensionMs, detail: `health check failed: ${h.detail}` });
      }
    }
    if (soaking) {
      const soakMs = options.soakMs!;
      emit({ type: 'soak-start', node: s.member.name, deadline: new Date(Date.now() + soakMs).toISOString(), durationMs: soakMs });
      const end = now() + soakMs;
      while (now() < end) {
        await sleep(Math.min(options.intervalMs, Math.max(0, end - now())));
        if (options.health === undefined) continue;
        const h = await checkHealth(options.health, connection, s.member.host);
        emit({ type: 'health', node: s.member.name, ok: h.ok, detail: h.detail, soak: true });
        // A failing check during the soak reverts the node at once, through the down path.
        if (!h.ok) return { ...(await revertNode(s, from, options, `health check failed during the soak: ${h.detail}`, { to, version })), durationMs: now() - started, suspensionMs };
      }
      try {
        const made = (await connection.request('make_permanent', { version: to })) as { permanent: string };
        return done({ outcome: 'committed', version: to, permanent: made.permanent, suspensionMs, detail: `soaked ${soakMs} ms, then made permanent` });
      } catch (e) {
        // The soak passed but the node could not record it: it runs `to`, and a restart would boot `from`.
        return done({ outcome: 'lost', version: to, permanent: from, suspensionMs, detail: `the soak passed but make_permanent failed: ${(e as Error).message}; a restart boots ${from}` });
      }
    }
    if (s.resume === true) {
      // Nothing to upgrade: the node already ran `to`; it only lacked the permanence a soak grants at its end.
      try {
        const made = (await connection.request('make_permanent', { version: to })) as { permanent: string };
        return done({ outcome: 'committed', version: to, permanent: made.permanent, detail: `already ran ${to}, not permanent: checked, then made permanent` });
      } catch (e) {
        return done({ outcome: 'lost', version: to, permanent: from, detail: `make_permanent failed: ${(e as Error).message}; a restart boots ${from}` });
      }
    }
    return done({ outcome: 'committed', version: to, permanent, suspensionMs, detail: hops > 1 ? `${hops} hops` : '' });
  } finally {
    connection.close();
  }
}

/** Take a node back to `from` (the down path), made permanent; the row says whether it worked. */
async function revertNode(s: Seen, from: string, options: RolloutOptions, why: string, row: Partial<NodeRow>): Promise<Partial<NodeRow>> {
  const started = now();
  try {
    const c = await s.member.connect();
    try {
      const r = await upgradeAlongPath({ connection: c, catalog: options.catalog, appups: options.appups, ...(options.releasesDir === undefined ? {} : { releasesDir: options.releasesDir }), to: from, dryRun: false, permanent: true, ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }) });
      const status = await remoteStatus(c);
      const ok = r.kind === 'path' ? r.ok : r.kind === 'applied' ? r.outcome.ok : r.kind === 'noop';
      return {
        outcome: ok && status.version === from ? 'reverted' : 'revert-failed',
        version: status.version,
        permanent: status.permanent,
        detail: ok ? why : `${why}; the downgrade to ${from} failed: ${r.kind === 'applied' ? r.outcome.message : r.kind === 'path' ? (r.hops.at(-1)?.outcome?.message ?? '') : r.kind}`,
        durationMs: (row.durationMs ?? 0) + (now() - started),
      };
    } finally {
      c.close();
    }
  } catch (e) {
    return { outcome: 'revert-failed', detail: `${why}; the downgrade to ${from} could not run: ${(e as Error).message}`, durationMs: (row.durationMs ?? 0) + (now() - started) };
  }
}

/** The node's status once it is no longer upgrading (reconnecting as needed), or undefined past `waitMs`. */
async function settledStatus(member: FleetMember, waitMs: number): Promise<RemoteStatus | undefined> {
  const end = now() + waitMs;
  while (now() < end) {
    try {
      const c = await member.connect();
      try {
        const st = await remoteStatus(c);
        if (!st.upgrading) return st;
      } finally {
        c.close();
      }
    } catch {
      // not back yet
    }
    await sleep(200);
  }
  return undefined;
}

function maxSuspension(outcomes: RemoteOutcome[]): number | null {
  const windows = outcomes.flatMap((o) => o.groups.map((g) => g.suspensionMs).filter((x): x is number => x !== null));
  return windows.length === 0 ? null : Math.max(...windows);
}

function describePath(r: PathUpgrade | { kind: 'applied' }): string {
  return r.kind === 'path' ? ` (hop ${r.hops.length} of ${r.path.length - 1}; the node stays on ${r.version})` : '';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Run `fn` over `items`, at most `limit` at a time, results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
