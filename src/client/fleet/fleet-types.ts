import type { Appup } from '../../appup/appup-model.js';
import type { Diagnostic } from '../../diagnostics/diagnostic.js';
import type { Catalog } from '../../release/release-catalog.js';
import type { Connection } from '../connection.js';
import type { RemoteStatus } from '../upgrade.js';
import type { HealthCheck } from './health-check.js';
import type { Wave } from './waves.js';

/** The data of a fleet rollout: its options, events, per-node rows and result (docs/fleet.md). */

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
  /**
   * Aborted by the operator (Ctrl-C): no further node or wave starts, soaks in
   * progress end early (`interrupted`), the upgrades in flight finish, then
   * the halt policy runs as for a failure.
   */
  signal?: AbortSignal;
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
 * - `interrupted`: the operator stopped the rollout during its soak: it runs `to`, not permanent;
 * - `not-started`: the rollout halted or was refused before this node.
 */
export type NodeOutcome = 'interrupted' | 'committed' | 'unchanged' | 'failed' | 'unhealthy' | 'reverted' | 'revert-failed' | 'lost' | 'unreachable' | 'not-started';

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

export interface Seen {
  member: FleetMember;
  status: RemoteStatus;
  /**
   * The node already runs the target but it is not permanent (a soak whose
   * client went away, an apply --no-permanent): finish the job — health check,
   * soak, make_permanent — instead of calling it unchanged.
   */
  resume?: boolean;
}
