import semver from 'semver';
import type { Diagnostic } from '../../diagnostics/diagnostic.js';
import { findPath } from '../../planner/find-path.js';
import { remoteStatus } from '../upgrade.js';
import { upgradeAlongPath } from '../upgrade-path.js';
import type { NodeRow, RolloutOptions, RolloutResult, Seen, WaveTiming } from './fleet-types.js';
import { mapLimit } from './map-limit.js';
import { revertNode, upgradeNode } from './node-upgrade.js';
import { planWaves } from './waves.js';

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
  const interrupted = (): boolean => {
    if (options.signal?.aborted !== true) return false;
    halt ??= 'interrupted by the operator';
    return true;
  };
  for (const wave of waves) {
    if (interrupted()) break;
    const waveStart = now();
    emit({ type: 'wave-start', wave: wave.index, kind: wave.kind, nodes: wave.nodes });
    for (const n of wave.nodes) rows.get(n)!.wave = wave.index;
    let waveFailed = false;
    await mapLimit(wave.nodes, options.concurrency, async (name) => {
      // Once a node of this wave failed (or the operator interrupted), the ones not started yet stay untouched.
      if (waveFailed || interrupted()) return;
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
    // An interrupted wave is not a passed wave, even if every node it started committed.
    const ok = !waveFailed && wave.nodes.every((n) => rows.get(n)!.outcome === 'committed');
    timings.push({ index: wave.index, kind: wave.kind, nodes: wave.nodes, durationMs, ok });
    emit({ type: 'wave-done', wave: wave.index, ok, durationMs });
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
