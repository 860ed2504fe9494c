import type { KeyObject } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeError } from '../../errors/errors.js';
import { formatDiagnostic } from '../../diagnostics/format-diagnostic.js';
import { hasErrors } from '../../diagnostics/diagnostic.js';
import { bundleBytes } from '../../release/bundle-bytes.js';
import { ATOMIC_TEMP_FILE, type PreparedFile } from '../../fs/write-file-atomic.js';
import { checkFileTrust, checkPathTrust } from '../../fs/check-path-trust.js';
import { lockDirectory, type DirectoryLock } from '../../fs/directory-lock.js';
import { applyParamsProblem, type ApplyParams } from '../../protocol/messages.js';
import { startNode, RuntimeError, type ApplyOptions, type ApplyOutcome, type LogSink, type NodeStatus, type RelupNode, type StepContext, type StepEvent, type StepPerformer } from '../node/relup-node.js';
import type { ReleaseImage } from '../node/release-image.js';
import { messageOf } from '../node/runtime-error.js';
import { HISTORY_FILE, HistoryLog, installedOf, previousOf, readHistory, recordEvent, writeHistory, type History, type HistoryEvent, type PreparedHistory } from './release-history.js';
import type { Release } from '../../release/release-model.js';
import { ReleaseStore } from './release-store.js';

/** Every write the node makes to its state directory; fault injection can make any of them fail. */
export type DurableWrite = 'history-boot' | 'history-started' | 'bundle-prepare' | 'bundle' | 'history-commit' | 'history-outcome' | 'history-permanent';

export interface HostOptions {
  /** The release to boot when the state directory has no permanent release yet (directory or bundle). */
  release?: string;
  /** Where installed bundles and the history live. Created 0700; it and every directory above it must pass checkPathTrust. */
  stateDir: string;
  /** Seen by modules as `relup.config`. */
  config?: Record<string, unknown>;
  /** 'paused': node-owned timers never fire (scratch nodes of `relup check --live`; see StartOptions). */
  timers?: 'running' | 'paused';
  /** States to boot with instead of the initial ones (StartOptions.states; scratch and test nodes). */
  states?: { modules?: Record<string, unknown>; processes?: Record<string, unknown> };
  log?: LogSink;
  /** Clock for history timestamps (tests). */
  now?: () => Date;
  /** Wraps the node's step performer for every upgrade (fault injection, chaos drills). */
  intercept?: ApplyOptions['intercept'];
  /** Accept only bundles signed by this ed25519 key (boot, upload and restart). */
  publicKey?: KeyObject;
  /** Wraps every durable write (fault injection: a full disk, an I/O error). */
  durableWrite?: (what: DurableWrite, write: () => Promise<void>) => Promise<void>;
}

export interface HostStatus extends NodeStatus {
  permanent: string;
  /** Installed releases older than the one running, newest first: where a rollback can go. */
  previous: string[];
  /** Every installed release, newest first. */
  installed: string[];
  history: HistoryEvent[];
  stateDir: string;
  /** Set when something the node did could not be recorded in its history (the history still says what a restart boots). */
  historyProblem?: string;
  /** The running release is in soak (docs/protocol.md#soak). */
  soak?: { version: string; startedAt: string; deadline: string; overdue: boolean };
}

export interface HostApplyOutcome extends ApplyOutcome {
  permanent: string;
  previous: string[];
}

/**
 * A node as a long-running process: the RelupNode plus what must outlive it —
 * installed bundles and the release history in the state directory. A
 * restarted host boots the permanent release, whatever it was started with.
 *
 * Durability rules:
 * - one node per state directory (a lock naming its pid);
 * - the state directory and every directory above it are trusted only if no
 *   one but us and root can write them; every installed bundle is verified
 *   against the hash the history recorded before the node boots;
 * - every change of the history goes through one queue (HistoryLog) and is
 *   reported only once it is on disk: status always says what a restart boots;
 * - the durable record of a commit is part of the commit step: if the bundle
 *   or the history cannot be written, the upgrade rolls back in place.
 */
export class NodeHost {
  private busy = false;
  /** The upgrade in progress (upload to last history write), so stop() can wait for it. */
  private running: Promise<unknown> | undefined;
  /** The last history write that failed outside a transaction, until a write succeeds again. */
  private unrecorded: string | undefined;
  /**
   * The running release's soak, in memory only: a restart boots the permanent
   * release, which is never the one in soak, so a soak cannot outlive the process.
   */
  private soak: { version: string; startedAt: Date; deadline: Date } | undefined;

  private constructor(
    readonly node: RelupNode,
    private readonly history: HistoryLog,
    private readonly store: ReleaseStore,
    private readonly options: HostOptions,
    readonly bootNotice: string,
    private readonly lock: DirectoryLock,
  ) {}

  static async start(options: HostOptions): Promise<NodeHost> {
    try {
      return await NodeHost.boot(options);
    } catch (e) {
      // A file-system error (EACCES, EROFS, ENOSPC, …) is a known condition of the state directory, not a bug in relup.
      if (e instanceof Error && !(e instanceof NodeError) && typeof (e as NodeJS.ErrnoException).code === 'string') {
        throw new RuntimeError('invalid-state', `the state directory ${options.stateDir} cannot be used: ${e.message}`, 'check that it is on a writable file system with free space and belongs to the user running the node');
      }
      throw e;
    }
  }

  private static async boot(options: HostOptions): Promise<NodeHost> {
    const { stateDir } = options;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await checkPathTrust(stateDir, 'the state directory');
    // Before anything in the directory is read or written: two nodes on one history would overwrite each other.
    const lock = await lockDirectory(stateDir, { what: `the state directory ${stateDir}` });
    let node: RelupNode | undefined;
    try {
      const store = new ReleaseStore(stateDir, options.publicKey);
      await store.init();
      await checkPathTrust(store.dir, 'the release store');
      await removeTempFiles(stateDir);
      const now = options.now ?? (() => new Date());
      const log = options.log ?? (() => undefined);
      const note = (message: string) => log({ time: Date.now(), level: 'info', source: 'node', message });
      const historyPath = join(stateDir, HISTORY_FILE);
      if (await exists(historyPath)) await checkFileTrust(historyPath, 'the history');
      const onDisk = await readHistory(stateDir);

      let image: ReleaseImage;
      let history: History;
      let notice: string;
      if (onDisk !== undefined) {
        const { installed, permanent } = await verifyInstalled(store, onDisk, note);
        if (permanent === undefined) {
          throw new RuntimeError('invalid-state', `the history in ${stateDir} names ${onDisk.name} ${onDisk.permanent} as permanent, but its bundle is missing`, `restore ${store.pathOf({ name: onDisk.name, version: onDisk.permanent })}, or move the state directory aside to boot afresh`);
        }
        image = permanent;
        // A restart boots the permanent release: an upgrade that was not made permanent does not survive a restart.
        notice = `booting the permanent release ${onDisk.permanent} from ${stateDir}`;
        if (options.release !== undefined) notice += ` (--release ${options.release} is used only for a fresh state directory)`;
        const { legacy: _legacy, ...plain } = onDisk;
        history = recordEvent(markInterrupted({ ...plain, installed }), { at: now().toISOString(), op: 'boot', from: onDisk.current, to: onDisk.permanent, status: 'booted' }, { current: onDisk.permanent });
      } else {
        if (options.release === undefined) throw new RuntimeError('invalid-release', `${stateDir} holds no release yet`, 'pass --release <dir|bundle> for the first start');
        const loaded = await store.load(options.release);
        if (loaded.image === undefined || hasErrors(loaded.diagnostics)) {
          const text = loaded.diagnostics.map((d) => formatDiagnostic(d, { color: false })).join('\n');
          throw new RuntimeError('invalid-release', `${options.release} is not a valid release:\n${text}`);
        }
        image = loaded.image;
        const isBundle = (await stat(options.release)).isFile();
        const bytes = isBundle ? await readFile(options.release) : (await bundleBytes(image.release, image.files)).bytes;
        await durably(options, 'bundle', () => store.install(image.release, bytes)).catch((e: unknown) => {
          throw new RuntimeError('state-write-failed', `cannot install ${store.pathOf(image.release)}: ${messageOf(e)}`, `free space in ${stateDir} (or fix the disk), then start the node again`);
        });
        notice = `booting ${image.release.name} ${image.release.version} from ${options.release}`;
        const { name, version, hash } = image.release;
        history = { format: 2, name, current: version, permanent: version, installed: { [version]: hash }, events: [{ at: now().toISOString(), op: 'boot', to: version, status: 'booted' }] };
      }
      node = await startNode({ image, ...(options.config === undefined ? {} : { config: options.config }), ...(options.log === undefined ? {} : { log: options.log }), ...(options.timers === undefined ? {} : { timers: options.timers }), ...(options.states === undefined ? {} : { states: options.states }) });
      const historyLog = new HistoryLog(
        stateDir,
        onDisk ?? history,
        (dir, h, label) => durably(options, label as DurableWrite, () => writeHistory(dir, h)),
        (file, label) => durably(options, label as DurableWrite, () => file.commit()),
      );
      // A node whose boot is not on record would disagree with its disk (the history could still name another current release).
      await historyLog.update(() => ({ ...history }), 'history-boot').catch(async (e: unknown) => {
        // A new state directory had no history: leave none (a failed write may have put the new file in place).
        if (onDisk === undefined) await unlink(historyPath).catch(() => undefined);
        throw new RuntimeError('state-write-failed', `cannot write ${historyPath}: ${messageOf(e)}`, `free space in ${stateDir} (or fix the disk), then start the node again`);
      });
      return new NodeHost(node, historyLog, store, options, notice, lock);
    } catch (e) {
      await node?.stop().catch(() => undefined);
      await lock.release();
      throw e;
    }
  }

  status(): HostStatus {
    const status = this.node.status();
    const h = this.history.value;
    const problem = this.history.problem ?? this.unrecorded;
    // The host is busy from the upload until the history is written, a little longer than the node's transaction.
    return {
      ...status,
      upgrading: status.upgrading || this.busy,
      permanent: h.permanent,
      previous: previousOf({ current: status.version, installed: h.installed }),
      installed: installedOf(h),
      history: h.events.slice(-50),
      stateDir: this.options.stateDir,
      ...(problem === undefined ? {} : { historyProblem: problem }),
      ...(this.soak === undefined ? {} : { soak: this.soakStatus(this.soak) }),
    };
  }

  private soakStatus(soak: { version: string; startedAt: Date; deadline: Date }): NonNullable<HostStatus['soak']> {
    return { version: soak.version, startedAt: soak.startedAt.toISOString(), deadline: soak.deadline.toISOString(), overdue: this.now().getTime() > soak.deadline.getTime() };
  }

  /**
   * Verify the uploaded bundle, then let the node evaluate the script. Runs to
   * its end even if the client that asked goes away. Rejects only with `busy`.
   */
  async apply(params: ApplyParams, onEvent?: (event: StepEvent) => void): Promise<HostApplyOutcome> {
    // Params valid field by field but not together (soakMs with permanent): refused before anything, even busy.
    const problem = applyParamsProblem(params);
    if (problem !== undefined) throw new RuntimeError('invalid-script', problem);
    if (this.busy) throw new RuntimeError('busy', `node ${this.node.name} is already applying an upgrade`, 'wait for it to finish (relup status shows it), then try again');
    this.busy = true;
    const running = this.applyExclusive(params, onEvent);
    this.running = running;
    try {
      return await running;
    } finally {
      this.busy = false;
      this.running = undefined;
    }
  }

  private async applyExclusive(params: ApplyParams, onEvent?: (event: StepEvent) => void): Promise<HostApplyOutcome> {
    const started = performance.now();
    const refuse = (code: string, message: string): HostApplyOutcome => ({
      status: 'refused', ok: false, message: `refused: ${message}; nothing changed`, name: this.node.name, from: params.script.from.version, to: params.script.to.version, direction: params.script.direction,
      version: this.node.version, failure: { code, message }, journal: [], groups: [], absent: {}, holdMs: null, durationMs: performance.now() - started, ...this.releases(),
    });
    const received = await this.store.receive(Buffer.from(params.bundle, 'base64'), params.script.to.hash);
    if (received.image === undefined) {
      return refuse('bundle-invalid', `the uploaded bundle does not verify: ${received.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code}: ${d.message}`).join('; ')}`);
    }
    const { release } = received.image;
    const recorded = release.name === this.node.name ? this.history.value.installed[release.version] : undefined;
    if (recorded !== undefined && recorded !== release.hash) {
      return refuse('version-conflict', `this node already has a different ${release.name} ${release.version} installed (a rebuilt release is a new version: bump it)`);
    }
    // Recorded before anything changes, so an attempt cut short by a crash of the node is in the history.
    const attempt = !params.dryRun;
    // The bundle's bytes go to disk and are synced now, before the point of no return, so that the commit
    // step (inside every suspension window) only renames them into place. A disk that cannot take them
    // refuses the upgrade here, with nothing changed.
    let prepared: PreparedFile | undefined;
    if (attempt && recorded === undefined) {
      try {
        await durably(this.options, 'bundle-prepare', async () => {
          prepared = await this.store.prepareInstall(release, received.bytes);
        });
      } catch (e) {
        // The write may have happened before the error (eio-after): nothing of it is kept.
        await prepared?.discard().catch(() => undefined);
        return refuse('state-write-failed', `cannot write ${this.store.pathOf(release)} (${messageOf(e)}); free space in the state directory`);
      }
    }
    const placeholders = new Set<HistoryEvent>();
    if (attempt) {
      const event: HistoryEvent = { at: this.now().toISOString(), op: 'apply', from: params.script.from.version, to: params.script.to.version, status: 'started' };
      try {
        await this.history.update((h) => recordEvent(h, event), 'history-started');
      } catch (e) {
        await prepared?.discard().catch(() => undefined);
        return refuse('state-write-failed', `cannot record the attempt in ${join(this.options.stateDir, HISTORY_FILE)} (${messageOf(e)}); free space in the state directory`);
      }
      placeholders.add(event);
    }
    // The history the commit will write, computed and synced to a temp file now, for the same reason as the
    // bundle: the commit step then renames it. It is used only if no other history write came in between
    // (a make_permanent); otherwise the commit writes the history in full, as it would without this.
    const commitIndex = params.script.steps.findIndex((s) => s.op === 'commit');
    const committed: HistoryEvent = { at: this.now().toISOString(), op: 'apply', from: params.script.from.version, to: params.script.to.version, status: 'committed', message: `committed at step ${commitIndex + 1} (commit)` };
    const commitChange = (h: History): History => recordEvent(withoutStarted(h), committed, { current: release.version, ...(params.permanent ? { permanent: release.version } : {}), installed: { version: release.version, hash: release.hash } });
    const preparedHistory = attempt ? await this.history.prepare(commitChange) : undefined;
    const durable = (performer: StepPerformer): StepPerformer => ({
      check: (step, ctx) => performer.check(step, ctx),
      perform: async (step, ctx) => {
        await performer.perform(step, ctx);
        if (step.op === 'commit') placeholders.add(await this.recordCommit(ctx, release, prepared, committed, commitChange, preparedHistory));
      },
      settle: (result) => performer.settle(result),
    });
    const intercept = this.options.intercept;
    const outcome = await this.node.applyScript(params.script, received.image, {
      dryRun: params.dryRun,
      ...(params.deadlineMs === undefined ? {} : { deadlineMs: params.deadlineMs }),
      ...(onEvent === undefined ? {} : { onEvent }),
      // Outermost, so the record of the commit follows the commit step as any fault injected into it leaves it.
      intercept: (steps) => durable(intercept === undefined ? steps : intercept(steps)),
    });
    // Not committed (or committed without needing it): the prepared bundle and history were never put in place.
    await prepared?.discard().catch(() => undefined);
    await preparedHistory?.file.discard().catch(() => undefined);
    if (attempt) await this.recordOutcome(outcome, params, placeholders);
    // A committed apply ends any soak (the release in soak no longer runs, or runs again by a new decision);
    // one asked with soakMs starts the new release's. A refused or rolled-back apply leaves the soak as it was.
    if (outcome.status === 'committed') {
      const at = this.now();
      this.soak = params.soakMs === undefined ? undefined : { version: outcome.version, startedAt: at, deadline: new Date(at.getTime() + params.soakMs) };
    }
    return { ...outcome, ...this.releases() };
  }

  /**
   * The durable half of the commit step, run right after the node switched its
   * release in memory and before the transaction settles: install the bundle,
   * then write the history that names the new release — both written and
   * synced before the point of no return, so here each is a rename and a
   * directory sync (a history write that came in between makes the commit
   * write the history in full instead). If either write fails
   * the step fails and the whole upgrade rolls back in place (the undo is
   * registered before the write, rule 1), so memory, status and disk never
   * disagree about what runs.
   */
  private async recordCommit(ctx: StepContext, release: Release, prepared: PreparedFile | undefined, event: HistoryEvent, change: (h: History) => History, preparedHistory: PreparedHistory | undefined): Promise<HistoryEvent> {
    // `prepared` is undefined when the release was already installed (its bundle is on disk and recorded).
    if (prepared !== undefined) {
      await durably(this.options, 'bundle', () => prepared.commit()).catch((e: unknown) => {
        throw new RuntimeError('state-write-failed', `cannot install ${this.store.pathOf(release)}: ${messageOf(e)}`, `free space in ${this.options.stateDir} (or fix the disk), then apply again`);
      });
    }
    const before = this.history.value;
    ctx.onUndo('put the history back on the release that was running', async () => {
      await this.history.update((h) => (h.current === before.current && h.permanent === before.permanent ? h : { ...h, current: before.current, permanent: before.permanent }), 'history-outcome');
    });
    await this.history.update(change, 'history-commit', preparedHistory).catch((e: unknown) => {
      throw new RuntimeError('state-write-failed', `cannot record the commit in ${join(this.options.stateDir, HISTORY_FILE)}: ${messageOf(e)}`, `free space in ${this.options.stateDir} (or fix the disk), then apply again`);
    });
    // Releases the history no longer names (past MAX_INSTALLED, release-history.ts) are uninstalled:
    // their bundles go too, after the write, so a crash leaves at worst a bundle nobody names (ignored at boot).
    const kept = this.history.value.installed;
    for (const version of Object.keys(before.installed).filter((v) => !(v in kept))) {
      await unlink(this.store.pathOf({ name: release.name, version })).catch(() => undefined);
    }
    return event;
  }

  /**
   * Replace this attempt's placeholder events with its outcome. The release
   * fields were settled durably by the transaction itself (commit step or its
   * undo), so a failure here loses figures, never which release runs.
   */
  private async recordOutcome(outcome: ApplyOutcome, params: ApplyParams, placeholders: ReadonlySet<HistoryEvent>): Promise<void> {
    const finished = outcome.status !== 'noop' && outcome.status !== 'dry-run';
    const event: HistoryEvent | undefined = finished
      ? {
          at: this.now().toISOString(),
          op: 'apply',
          from: params.script.from.version,
          to: params.script.to.version,
          status: outcome.status,
          message: outcome.message,
          durationMs: round(outcome.durationMs),
          suspensionMs: Object.fromEntries(outcome.groups.map((g) => [String(g.id), g.suspensionMs])),
          ...(outcome.failure?.step === undefined ? {} : { failedStep: `${outcome.failure.step.index + 1} ${outcome.failure.step.op} ${outcome.failure.step.target}`.trim() }),
        }
      : undefined;
    try {
      await this.history.update((h) => {
        const events = h.events.filter((e) => !placeholders.has(e));
        return { ...h, events: event === undefined ? events : [...events, event].slice(-500) };
      }, 'history-outcome');
      this.unrecorded = undefined;
    } catch (e) {
      this.unrecorded = `the outcome of the last upgrade (${outcome.status} ${params.script.from.version} → ${params.script.to.version}) could not be written to ${HISTORY_FILE}: ${messageOf(e)}`;
      this.options.log?.({ time: Date.now(), level: 'error', source: 'node', message: this.unrecorded });
    }
  }

  private releases(): { permanent: string; previous: string[] } {
    const h = this.history.value;
    return { permanent: h.permanent, previous: previousOf({ current: this.node.version, installed: h.installed }) };
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  /**
   * Make an installed release the one a restart boots. Queued with every
   * other history change, and its bundle is verified in its turn, so requests
   * take effect in the order they came and status never runs ahead of disk.
   */
  async makePermanent(version: string): Promise<{ permanent: string }> {
    const h = await this.history.update(async (latest) => {
      const hash = latest.installed[version];
      const image = hash === undefined ? undefined : await this.store.installed(this.node.name, version, hash);
      if (image === undefined) throw new RuntimeError('invalid-release', `${this.node.name} ${version} is not installed on this node (installed: ${installedOf(latest).join(', ')})`, 'apply it first');
      if (latest.permanent === version) return latest;
      return recordEvent(latest, { at: this.now().toISOString(), op: 'make_permanent', to: version, status: 'ok' }, { permanent: version });
    }, 'history-permanent').catch((e: unknown) => {
      if (e instanceof RuntimeError) throw e;
      throw new RuntimeError('state-write-failed', `cannot record ${version} as permanent in ${join(this.options.stateDir, HISTORY_FILE)}: ${messageOf(e)}; the permanent release is still ${this.history.value.permanent}`, `free space in ${this.options.stateDir} (or fix the disk), then try again`);
    });
    // Making the release in soak permanent is the soak's verdict: it passed.
    if (this.soak !== undefined && h.permanent === this.soak.version) this.soak = undefined;
    return { permanent: h.permanent };
  }

  /** Stop the node, wait for the history to be written, release the state directory. Idempotent. */
  async stop(): Promise<void> {
    await this.node.stop();
    await this.running?.catch(() => undefined);
    await this.history.idle();
    await this.lock.release();
  }
}

/**
 * Verify every bundle the history records before anything of them runs (a
 * bundle someone replaced is refused with `bundle-tampered`). A recorded
 * release whose bundle is gone is forgotten (a rollback cannot go there);
 * bundles the history does not name were never run (an install cut short)
 * and are ignored. A format-1 history records no hashes: they are taken now.
 */
async function verifyInstalled(store: ReleaseStore, history: History & { legacy?: true }, note: (message: string) => void): Promise<{ installed: Record<string, string>; permanent: ReleaseImage | undefined }> {
  const installed: Record<string, string> = {};
  let permanent: ReleaseImage | undefined;
  const keep = (version: string, image: ReleaseImage) => {
    installed[version] = image.release.hash;
    if (version === history.permanent) permanent = image;
  };
  if (history.legacy === true) {
    for (const version of await store.bundleVersions(history.name)) {
      const image = await store.installed(history.name, version, undefined);
      if (image !== undefined) keep(version, image);
    }
    note(`history format 1: recorded the release hashes of ${Object.keys(installed).length} installed bundles`);
    return { installed, permanent };
  }
  for (const [version, hash] of Object.entries(history.installed)) {
    const image = await store.installed(history.name, version, hash);
    if (image === undefined) note(`${store.pathOf({ name: history.name, version })} is gone: ${version} can no longer be rolled back to`);
    else keep(version, image);
  }
  for (const version of await store.bundleVersions(history.name)) {
    if (history.installed[version] === undefined) note(`${store.pathOf({ name: history.name, version })} is not in the history (an install cut short?): ignored`);
  }
  return { installed, permanent };
}

async function durably(options: HostOptions, what: DurableWrite, write: () => Promise<void>): Promise<void> {
  await (options.durableWrite === undefined ? write() : options.durableWrite(what, write));
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

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Temporary files of atomic writes interrupted by a crash: never read, so only removed. */
async function removeTempFiles(stateDir: string): Promise<void> {
  for (const name of await readdir(stateDir).catch(() => [] as string[])) {
    if (ATOMIC_TEMP_FILE.test(name)) await unlink(join(stateDir, name)).catch(() => undefined);
  }
}

