import type { Connection } from '../connection.js';
import { remoteStatus, type RemoteOutcome, type RemoteStatus } from '../upgrade.js';
import { upgradeAlongPath, type PathUpgrade } from '../upgrade-path.js';
import type { FleetEvent, FleetMember, NodeRow, RolloutOptions, Seen } from './fleet-types.js';
import { checkHealth } from './health-check.js';

const now = () => performance.now();

/** Upgrade one node, check its health, soak it; the row says how it ended. */
export async function upgradeNode(s: Seen, to: string, options: RolloutOptions, emit: (e: FleetEvent) => void): Promise<Partial<NodeRow>> {
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
          ...(soaking ? { soakMs: options.soakMs! } : {}),
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
        await sleep(Math.min(options.intervalMs, Math.max(0, end - now())), options.signal);
        // Interrupted: neither made permanent nor reverted here; the halt policy decides.
        if (options.signal?.aborted === true) return done({ outcome: 'interrupted', version, permanent: from, suspensionMs, detail: `soak interrupted by the operator; runs ${version}, a restart boots ${from}` });
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
export async function revertNode(s: Seen, from: string, options: RolloutOptions, why: string, row: Partial<NodeRow>): Promise<Partial<NodeRow>> {
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

/** Wait `ms`, or less if `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
