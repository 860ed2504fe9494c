import type { KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDiagnostic } from '../../diagnostics/format-diagnostic.js';
import { hasErrors } from '../../diagnostics/diagnostic.js';
import { bundleBytes } from '../../release/bundle-bytes.js';
import { ATOMIC_TEMP_FILE } from '../../fs/write-file-atomic.js';
import type { ApplyParams } from '../../protocol/messages.js';
import { startNode, RuntimeError, type ApplyOptions, type ApplyOutcome, type LogSink, type NodeStatus, type RelupNode, type StepEvent } from '../node/relup-node.js';
import type { ReleaseImage } from '../node/release-image.js';
import { readHistory, recordEvent, writeHistory, type History, type HistoryEvent } from './release-history.js';
import { ReleaseStore } from './release-store.js';

export interface HostOptions {
  /** The release to boot when the state directory has no permanent release yet (directory or bundle). */
  release?: string;
  /** Where installed bundles and the history live. Created 0700. */
  stateDir: string;
  /** Seen by modules as `relup.config`. */
  config?: Record<string, unknown>;
  log?: LogSink;
  /** Clock for history timestamps (tests). */
  now?: () => Date;
  /** Wraps the node's step performer for every upgrade (fault injection, chaos drills). */
  intercept?: ApplyOptions['intercept'];
  /** Accept only bundles signed by this ed25519 key (boot, upload and restart). */
  publicKey?: KeyObject;
}

export interface HostStatus extends NodeStatus {
  permanent: string;
  previous: string[];
  history: HistoryEvent[];
  stateDir: string;
}

export interface HostApplyOutcome extends ApplyOutcome {
  permanent: string;
  previous: string[];
}

/**
 * A node as a long-running process: the RelupNode plus what must outlive it —
 * installed bundles and the release history in the state directory. A
 * restarted host boots the permanent release, whatever it was started with.
 */
export class NodeHost {
  private busy = false;

  private constructor(
    readonly node: RelupNode,
    private history: History,
    private readonly store: ReleaseStore,
    private readonly options: HostOptions,
    readonly bootNotice: string,
  ) {}

  static async start(options: HostOptions): Promise<NodeHost> {
    await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
    const store = new ReleaseStore(options.stateDir, options.publicKey);
    await store.init();
    await removeTempFiles(options.stateDir);
    const now = options.now ?? (() => new Date());
    const previous = await readHistory(options.stateDir);

    let image: ReleaseImage;
    let history: History;
    let notice: string;
    if (previous !== undefined) {
      const permanent = await store.installed(previous.name, previous.permanent);
      if (permanent === undefined) {
        throw new RuntimeError('invalid-state', `the history in ${options.stateDir} names ${previous.name} ${previous.permanent} as permanent, but its bundle is missing or does not verify`, `restore ${store.pathOf({ name: previous.name, version: previous.permanent })}, or move the state directory aside to boot afresh`);
      }
      image = permanent;
      // A restart boots the permanent release: an upgrade that was not made permanent does not survive a restart.
      notice = `booting the permanent release ${previous.permanent} from ${options.stateDir}`;
      if (options.release !== undefined) notice += ` (--release ${options.release} is used only for a fresh state directory)`;
      history = recordEvent(markInterrupted(previous), { at: now().toISOString(), op: 'boot', from: previous.current, to: previous.permanent, status: 'booted' }, { current: previous.permanent });
    } else {
      if (options.release === undefined) throw new RuntimeError('invalid-release', `${options.stateDir} holds no release yet`, 'pass --release <dir|bundle> for the first start');
      const loaded = await store.load(options.release);
      if (loaded.image === undefined || hasErrors(loaded.diagnostics)) {
        const text = loaded.diagnostics.map((d) => formatDiagnostic(d, { color: false })).join('\n');
        throw new RuntimeError('invalid-release', `${options.release} is not a valid release:\n${text}`);
      }
      image = loaded.image;
      const isBundle = (await stat(options.release)).isFile();
      await store.install(image.release, isBundle ? await readFile(options.release) : (await bundleBytes(image.release, image.files)).bytes);
      notice = `booting ${image.release.name} ${image.release.version} from ${options.release}`;
      history = { format: 1, name: image.release.name, current: image.release.version, permanent: image.release.version, previous: [], events: [{ at: now().toISOString(), op: 'boot', to: image.release.version, status: 'booted' }] };
    }
    const node = await startNode({ image, ...(options.config === undefined ? {} : { config: options.config }), ...(options.log === undefined ? {} : { log: options.log }) });
    await writeHistory(options.stateDir, history);
    return new NodeHost(node, history, store, options, notice);
  }

  status(): HostStatus {
    const status = this.node.status();
    // The host is busy from the upload until the history is written, a little longer than the node's transaction.
    return { ...status, upgrading: status.upgrading || this.busy, permanent: this.history.permanent, previous: this.history.previous, history: this.history.events.slice(-50), stateDir: this.options.stateDir };
  }

  /**
   * Verify the uploaded bundle, then let the node evaluate the script. Runs to
   * its end even if the client that asked goes away. Rejects only with `busy`.
   */
  async apply(params: ApplyParams, onEvent?: (event: StepEvent) => void): Promise<HostApplyOutcome> {
    if (this.busy) throw new RuntimeError('busy', `node ${this.node.name} is already applying an upgrade`, 'wait for it to finish (relup status shows it), then try again');
    this.busy = true;
    try {
      return await this.applyExclusive(params, onEvent);
    } finally {
      this.busy = false;
    }
  }

  private async applyExclusive(params: ApplyParams, onEvent?: (event: StepEvent) => void): Promise<HostApplyOutcome> {
    const started = performance.now();
    const refuse = (code: string, message: string): HostApplyOutcome => ({
      status: 'refused', ok: false, message: `refused: ${message}; nothing changed`, name: this.node.name, from: params.script.from.version, to: params.script.to.version, direction: params.script.direction,
      version: this.node.version, failure: { code, message }, journal: [], groups: [], absent: {}, holdMs: null, durationMs: performance.now() - started, permanent: this.history.permanent, previous: this.history.previous,
    });
    const received = await this.store.receive(Buffer.from(params.bundle, 'base64'));
    if (received.image === undefined) {
      return refuse('bundle-invalid', `the uploaded bundle does not verify: ${received.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code}: ${d.message}`).join('; ')}`);
    }
    const { release } = received.image;
    const installed = release.name === this.node.name ? await this.store.installed(release.name, release.version) : undefined;
    if (installed !== undefined && installed.release.hash !== release.hash) {
      return refuse('version-conflict', `this node already has a different ${release.name} ${release.version} installed (a rebuilt release is a new version: bump it)`);
    }
    // Recorded before anything changes, so an attempt cut short by a crash of the node is in the history.
    const attempt = !params.dryRun;
    if (attempt) {
      this.history = recordEvent(this.history, { at: this.now().toISOString(), op: 'apply', from: params.script.from.version, to: params.script.to.version, status: 'started' });
      await writeHistory(this.options.stateDir, this.history);
    }
    const outcome = await this.node.applyScript(params.script, received.image, { dryRun: params.dryRun, ...(params.deadlineMs === undefined ? {} : { deadlineMs: params.deadlineMs }), ...(onEvent === undefined ? {} : { onEvent }), ...(this.options.intercept === undefined ? {} : { intercept: this.options.intercept }) });
    if (outcome.status === 'committed') await this.store.install(release, received.bytes);
    if (attempt) this.history = withoutStarted(this.history);
    if (outcome.status !== 'noop' && outcome.status !== 'dry-run') {
      const event: HistoryEvent = {
        at: this.now().toISOString(),
        op: 'apply',
        from: params.script.from.version,
        to: params.script.to.version,
        status: outcome.status,
        message: outcome.message,
        durationMs: Math.round(outcome.durationMs * 100) / 100,
        suspensionMs: Object.fromEntries(outcome.groups.map((g) => [String(g.id), g.suspensionMs])),
        ...(outcome.failure?.step === undefined ? {} : { failedStep: `${outcome.failure.step.index + 1} ${outcome.failure.step.op} ${outcome.failure.step.target}`.trim() }),
      };
      const committed = outcome.status === 'committed';
      this.history = recordEvent(this.history, event, committed ? { current: outcome.version, ...(params.permanent ? { permanent: outcome.version } : {}) } : undefined);
    }
    if (attempt) await writeHistory(this.options.stateDir, this.history);
    return { ...outcome, permanent: this.history.permanent, previous: this.history.previous };
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  /** Make an installed release the one a restart boots. */
  async makePermanent(version: string): Promise<{ permanent: string }> {
    const image = await this.store.installed(this.node.name, version);
    if (image === undefined) throw new RuntimeError('invalid-release', `${this.node.name} ${version} is not installed on this node`, 'apply it first');
    this.history = recordEvent(this.history, { at: new Date().toISOString(), op: 'make_permanent', to: version, status: 'ok' }, { permanent: version });
    await writeHistory(this.options.stateDir, this.history);
    return { permanent: version };
  }

  stop(): Promise<void> {
    return this.node.stop();
  }
}

/** An attempt still `started` when the node boots was cut short by a crash of the node. */
function markInterrupted(history: History): History {
  const last = history.events.at(-1);
  if (last?.op !== 'apply' || last.status !== 'started') return history;
  return { ...history, events: [...history.events.slice(0, -1), { ...last, status: 'interrupted', message: 'the node stopped during this upgrade (killed or crashed); it restarted on its permanent release' }] };
}

function withoutStarted(history: History): History {
  const last = history.events.at(-1);
  return last?.op === 'apply' && last.status === 'started' ? { ...history, events: history.events.slice(0, -1) } : history;
}

/** Temporary files of atomic writes interrupted by a crash: never read, so only removed. */
async function removeTempFiles(stateDir: string): Promise<void> {
  for (const name of await readdir(stateDir).catch(() => [] as string[])) {
    if (ATOMIC_TEMP_FILE.test(name)) await unlink(join(stateDir, name)).catch(() => undefined);
  }
}
