import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { readHistory } from '../../../src/runtime/node-host/release-history.js';
import { startNode, type RelupNode } from '../../../src/runtime/node/relup-node.js';
import type { ReleaseImage } from '../../../src/runtime/node/release-image.js';
import { CLI, DEMO_APPUPS, DEMO_RELEASES } from '../../helpers/repo-paths.js';
import { DEMO, bundleOf, canonical, demoScript, diffStates, fromOf, imageOf, toOf, trafficExpectation, type Direction, type States, type Version } from './demo.js';
import { NODE_CONFIG, quiet, runningProblems, sendSequentially, servingProblems, untouchedReference, viewOfNode, withTimeout } from './in-process.js';
import type { CellResult, Column } from './matrix.js';
import { RealNode } from './real-node.js';
import { heldProblems, sendTraffic, trafficProblems, warmUp, type Sent } from './traffic.js';

/** A scratch project (releases/ and appups/ of the demo) for `relup apply` and `relup node start`, under the OS temp dir. */
export async function scratchProject(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relup-fault-real-'));
  await cp(DEMO_RELEASES, join(dir, 'releases'), { recursive: true, filter: (src) => !src.endsWith('.tar.gz') });
  await cp(DEMO_APPUPS, join(dir, 'appups'), { recursive: true });
  return dir;
}

interface HistoryEventLike {
  op: string;
  from?: string;
  to: string;
  status: string;
  failedStep?: string;
}

interface HostStatusLike {
  version: string;
  hash: string;
  permanent: string;
  upgrading: boolean;
  modules: { name: string; hash: string; version: string }[];
  processes: { name: string; suspended: boolean; mailbox: number; handling: boolean }[];
  history: HistoryEventLike[];
}

async function status(node: RealNode): Promise<HostStatusLike> {
  return (await node.request('status', {})) as HostStatusLike;
}

async function realQuiet(node: RealNode, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const s = await status(node);
    if (!s.upgrading && s.processes.every((p) => p.suspended || (p.mailbox === 0 && !p.handling))) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const freshStates = new Map<string, Promise<string>>();
/** The states of a node just booted on `image` (what a restart gives: in-memory state does not survive a kill). */
function freshStatesOf(image: ReleaseImage): Promise<string> {
  let s = freshStates.get(image.release.hash);
  if (s === undefined) {
    s = (async () => {
      const node = await startNode({ image, config: NODE_CONFIG });
      try {
        return canonical(node.states());
      } finally {
        await node.stop();
      }
    })();
    freshStates.set(image.release.hash, s);
  }
  return s;
}

// Each pause waits for the test's SIGUSR2 (at most a minute, so a slow machine cannot make a kill land late).
// One pause per step of the longest demo script (the down plan: 27 steps).
const ALL_PAUSES = Array.from({ length: 27 }, (_, i) => `${i}:pause=60000`).join(',');

/**
 * Client-kill cells on one real node that pauses at every step of every
 * upgrade (RELUP_FAULTS=0:pause,…,26:pause): for each cell a real
 * `relup apply` runs; at every step the node must answer `status`; at the
 * cell's step the client is SIGKILLed, the traffic is sent, a second apply
 * must get `busy`; then the node is let go and must finish on its own. Past
 * the point of no return the traffic must stay held through every later step
 * and run once after the commit, on the new code; before it, it runs at once
 * on the old code. The cells alternate up and down; an in-process shadow node
 * goes through the same sequence — the traffic sent one message at a time
 * before a clean attempt, or after it when it was held — and the real node
 * must end each cell in the shadow's states.
 */
export async function clientKillChain(project: string, cells: { direction: Direction; step: number; filler?: boolean }[]): Promise<CellResult[]> {
  const results: CellResult[] = [];
  const stateDir = join(project, `state-client-${cells[0]!.direction}-${cells[0]!.step}`);
  const dir = await mkdtemp(join(tmpdir(), 'relup-fault-ck-'));
  let node: RealNode | undefined;
  let shadow: RelupNode | undefined;
  try {
    node = await RealNode.start(dir, { stateDir, release: join(project, 'releases', '1.2.2'), faults: ALL_PAUSES });
    shadow = await startNode({ image: DEMO.v122, config: NODE_CONFIG });
    const shadowView = viewOfNode(shadow, shadow.status().servers[0]!.port);
    await warmUp(node.view());
    await warmUp(shadowView);
    for (const cell of cells) {
      if (cell.filler) {
        await fillerApply(node, shadow, cell.direction);
        continue;
      }
      const problems: string[] = [];
      let outcome = 'error';
      try {
        outcome = await clientKillCell(node, shadow, shadowView, project, cell, problems);
      } catch (e) {
        problems.push(`the cell could not run: ${e instanceof Error ? e.message : String(e)}`);
      }
      results.push({ direction: cell.direction, step: cell.step, column: 'client kill', outcome, problems, held: trafficExpectation(demoScript(cell.direction), cell.step) === 'held' });
      if (!node.alive) break;
    }
  } finally {
    await node?.stop();
    await shadow?.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

/** A clean attempt, not a cell: brings the node (and its shadow) to the other release, letting every pause go. */
async function fillerApply(node: RealNode, shadow: RelupNode, direction: Direction): Promise<void> {
  const script = demoScript(direction);
  const next = imageOf(DEMO, toOf(direction));
  let from = node.lines.length;
  const applied = node.request('apply', { script, bundle: await bundleOf(next), dryRun: false, permanent: true }) as Promise<{ status: string; message: string }>;
  for (let j = 0; j < script.steps.length; j++) {
    from = (await node.waitForLine(new RegExp(`^RELUP_FAULTS: step ${j} \\(.*\\) paused$`), from)) + 1;
    node.signal('SIGUSR2');
  }
  const o = await applied;
  const s = await shadow.applyScript(script, next);
  if (o.status !== 'committed' || s.status !== 'committed') throw new Error(`a clean ${direction} attempt did not commit: ${o.message}; shadow: ${s.message}`);
}

async function clientKillCell(node: RealNode, shadow: RelupNode, shadowView: ReturnType<typeof viewOfNode>, project: string, cell: { direction: Direction; step: number }, problems: string[]): Promise<string> {
  const script = demoScript(cell.direction);
  const to = toOf(cell.direction);
  const next = imageOf(DEMO, to);
  const expectation = trafficExpectation(script, cell.step);
  const before = (await node.request('states', {})) as States;
  if (canonical(before) !== canonical(shadow.states())) problems.push('before the attempt the node and its shadow differ already');
  const client = execa('node', [CLI, 'apply', '--target', node.socket, '--to', to, '--json'], { cwd: project, reject: false, stdin: 'ignore', env: { NO_COLOR: '1' } });
  let from = node.lines.length;
  let sent: Sent | undefined;
  let heldBroken = false;
  const checkHeld = (when: string) => {
    if (sent === undefined || heldBroken) return;
    const p = heldProblems(sent, when);
    problems.push(...p);
    heldBroken = p.length > 0;
  };
  for (let j = 0; j < script.steps.length; j++) {
    from = (await node.waitForLine(new RegExp(`^RELUP_FAULTS: step ${j} \\(.*\\) paused$`), from)) + 1;
    // status answers at every step of the upgrade, and says so.
    const s = await withTimeout(status(node), 2000, `status did not answer at step ${j}`);
    if (!s.upgrading) problems.push(`status at step ${j} does not say upgrading`);
    // Held traffic stays held through every later step, until the transaction settles.
    checkHeld(`at step ${j}, before the transaction settled`);
    if (j === cell.step) {
      if (client.exitCode !== null) problems.push(`the client had already exited (${client.exitCode}) before step ${j}`);
      client.kill('SIGKILL');
      const r = await client;
      if (r.signal !== 'SIGKILL') problems.push(`the client was not killed at step ${j}: exit ${r.exitCode}`);
      sent = sendTraffic(node.view(), expectation);
      const landed = await sent.landed;
      if (landed !== undefined) problems.push(landed);
      const second = await node.request('apply', { script, bundle: await bundleOf(next), dryRun: false, permanent: true }).then(
        (o) => `answered ${(o as { status: string }).status}`,
        (e: { code?: string; message?: string }) => (e.code === 'busy' ? 'busy' : `${e.code}: ${e.message}`),
      );
      if (second !== 'busy') problems.push(`a second apply at step ${j} was not refused as busy: ${second}`);
      // A client that died must not keep the node from taking new control connections.
      const c = await node.connect();
      c.close();
      checkHeld('during the step');
    }
    node.signal('SIGUSR2');
  }
  await client.catch(() => undefined);
  const end = Date.now() + 10_000;
  while ((await status(node)).upgrading && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  const results = sent === undefined ? [] : await withTimeout(sent.settled, 5000, 'the traffic was not answered within 5 s');
  await realQuiet(node);

  // The shadow: the traffic one message at a time on the old code then a clean attempt, or (held) the other way round.
  if (expectation === 'handled') await sendSequentially(shadowView);
  const shadowOutcome = await shadow.applyScript(script, next);
  if (expectation === 'held') await sendSequentially(shadowView);
  await quiet(shadow);
  if (shadowOutcome.status !== 'committed') problems.push(`the shadow did not commit: ${shadowOutcome.message}`);

  const after = (await node.request('states', {})) as States;
  problems.push(...trafficProblems(before, after, results));
  const expected = canonical(shadow.states());
  const what = expectation === 'held' ? 'the traffic after a clean commit' : 'the traffic, then a clean commit';
  if (canonical(after) !== expected) problems.push(...diffStates(JSON.parse(expected), after).map((d) => `state (vs. ${what}): ${d}`).slice(0, 4));
  const s = await status(node);
  problems.push(...runningProblems(s, next));
  problems.push(...(await servingProblems(node.port, to)));
  const last = s.history.at(-1);
  if (last?.op !== 'apply' || last.status !== 'committed' || last.from !== fromOf(cell.direction) || last.to !== to) problems.push(`history's last event is ${JSON.stringify(last)}, expected a committed apply ${fromOf(cell.direction)} → ${to}`);
  if (s.permanent !== to) problems.push(`permanent is ${s.permanent}, expected ${to}`);
  return s.version === to && last?.status === 'committed' ? 'committed' : (last?.status ?? 'unknown');
}

/**
 * Node-kill cells: a chain of real nodes on one state directory. Each node
 * is started with RELUP_FAULTS=<step>:<exit|after-exit>, gets the script over
 * its control socket and dies by SIGKILL at that step; the next node of the
 * chain is its restart, checked, then given the next cell's fault.
 */
export async function nodeKillChain(project: string, direction: Direction, column: Extract<Column, 'node kill' | 'node kill after'>, steps: number[]): Promise<CellResult[]> {
  const fault = column === 'node kill' ? 'exit' : 'after-exit';
  const boot: Version = fromOf(direction);
  const image = imageOf(DEMO, boot);
  const script = demoScript(direction);
  const bundle = await bundleOf(imageOf(DEMO, toOf(direction)));
  const dir = await mkdtemp(join(tmpdir(), 'relup-fault-nk-'));
  const stateDir = join(dir, 'state');
  const results: CellResult[] = [];
  let node: RealNode | undefined;
  try {
    node = await RealNode.start(dir, { stateDir, release: join(project, 'releases', boot), faults: `${steps[0]}:${fault}` });
    for (const [k, step] of steps.entries()) {
      const problems: string[] = [];
      let outcome = 'error';
      try {
        const applies = (await readHistory(stateDir))?.events.filter((e) => e.op === 'apply').length ?? 0;
        const events: { index: number; status: string }[] = [];
        const answer = node
          .request('apply', { script, bundle, dryRun: false, permanent: true }, (e) => events.push({ index: Number(e['index']), status: String(e['status']) }))
          .then(
            (o) => `answered ${(o as { status: string }).status}`,
            (e: { code?: string }) => e.code ?? 'error',
          );
        const exit = await withTimeout(node.exited, 10_000, `the node did not die at step ${step}`);
        if (exit.signal !== 'SIGKILL') problems.push(`the node ended with ${exit.signal ?? `exit ${exit.exitCode}`}, not SIGKILL`);
        const answered = await answer;
        if (answered !== 'connection_closed' && answered !== 'unreachable') problems.push(`the client got "${answered}" instead of losing its connection`);
        const beyond = events.filter((e) => e.index > step);
        if (beyond.length > 0) problems.push(`the node reported steps after ${step} before it died (${beyond.map((e) => `${e.index} ${e.status}`).join(', ')})`);
        if (!events.some((e) => e.index === step && e.status === 'start')) problems.push(`no "start" event of step ${step} reached the client before the kill`);
        // The restart: the same state directory; the next cell's fault.
        const nextStep = steps[k + 1];
        node = await RealNode.start(dir, { stateDir, release: join(project, 'releases', boot), ...(nextStep === undefined ? {} : { faults: `${nextStep}:${fault}` }) });
        outcome = `restart → ${(await status(node)).version}`;
        problems.push(...(await restartProblems(node, image, script, applies)));
      } catch (e) {
        problems.push(`the cell could not run: ${e instanceof Error ? e.message : String(e)}`);
        if (node !== undefined && !node.alive) {
          const nextStep = steps[k + 1];
          node = await RealNode.start(dir, { stateDir, release: join(project, 'releases', boot), ...(nextStep === undefined ? {} : { faults: `${nextStep}:${fault}` }) }).catch(() => undefined);
        }
      }
      results.push({ direction, step, column, outcome, problems });
      if (node === undefined) break;
    }
  } finally {
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

/**
 * After a kill and a restart: the permanent release boots alone, nothing
 * suspended, fresh state, serving; the history reads back, names what runs,
 * records the killed attempt as `interrupted` (it was recorded as started
 * before anything changed) followed by the boot; no temp file or upload is
 * left in the state directory.
 */
async function restartProblems(node: RealNode, image: ReleaseImage, script: { from: { version: string }; to: { version: string } }, appliesBefore: number): Promise<string[]> {
  const problems: string[] = [];
  const s = await status(node);
  const version = image.release.version;
  problems.push(...runningProblems(s, image));
  if (s.permanent !== version) problems.push(`permanent is ${s.permanent}, expected ${version}`);
  const states = await node.request('states', {});
  const fresh = await freshStatesOf(image);
  if (canonical(states) !== fresh) problems.push(...diffStates(JSON.parse(fresh), states).map((d) => `state (vs. a fresh boot): ${d}`).slice(0, 4));
  problems.push(...(await servingProblems(node.port, version)).filter((p) => !p.includes('/players/p1')));
  const read = await readHistory(node.stateDir).then(
    (h) => ({ h, error: undefined }),
    (e: unknown) => ({ h: undefined, error: e }),
  );
  const onDisk = read.h;
  if (onDisk === undefined) problems.push(`history.json does not read back: ${String(read.error)}`);
  else {
    if (onDisk.current !== version || onDisk.permanent !== version) problems.push(`history.json says current ${onDisk.current}, permanent ${onDisk.permanent}; the node runs ${version}`);
    const last = onDisk.events.at(-1);
    if (last?.op !== 'boot' || last.to !== version || last.status !== 'booted') problems.push(`history's last event is ${JSON.stringify(last)}, expected the boot of ${version}`);
    const applies = onDisk.events.filter((e) => e.op === 'apply');
    const killed = applies.at(-1);
    if (applies.length !== appliesBefore + 1) problems.push(`the history records ${applies.length - appliesBefore} apply events for the killed attempt, expected 1 (interrupted)`);
    else if (killed?.status !== 'interrupted' || killed.from !== script.from.version || killed.to !== script.to.version) {
      problems.push(`the killed attempt is recorded as ${JSON.stringify(killed)}, expected interrupted ${script.from.version} → ${script.to.version}`);
    }
    if (JSON.stringify(s.history.at(-1)) !== JSON.stringify(last)) problems.push('status and history.json disagree on the last event');
  }
  const temp = [...(await readdir(node.stateDir)), ...(await readdir(join(node.stateDir, 'releases')))].filter((n) => n.endsWith('.tmp'));
  if (temp.length > 0) problems.push(`temp files left in the state directory: ${temp.join(', ')}`);
  return problems;
}

/**
 * The `crash` cells on a real node (K2's regression):
 * RELUP_FAULTS=<step-1>:pause,<step>:crash. The traffic is sent at the
 * pause, just before the migration during which the migrated process dies;
 * past the point of no return it is held at the node's entry, so none of it
 * is in the dying process's mailbox. The migration must fail
 * (`process-stopped`) at that step, the rollback must restart the process on
 * the old code with its state from before the attempt and say so truthfully;
 * then every message runs once, on the old code: exactly the states of a
 * node that never upgraded and got the same traffic.
 */
export async function crashCell(project: string, direction: Direction, step: number): Promise<CellResult> {
  const problems: string[] = [];
  const boot = fromOf(direction);
  const image = imageOf(DEMO, boot);
  const script = demoScript(direction);
  const expectation = trafficExpectation(script, step - 1);
  const dir = await mkdtemp(join(tmpdir(), 'relup-fault-crash-'));
  let node: RealNode | undefined;
  let outcome = 'error';
  try {
    node = await RealNode.start(dir, { stateDir: join(dir, 'state'), release: join(project, 'releases', boot), faults: `${step - 1}:pause=60000,${step}:crash` });
    await warmUp(node.view());
    const before = (await node.request('states', {})) as States;
    const from = node.lines.length;
    const applied = node.request('apply', { script, bundle: await bundleOf(imageOf(DEMO, toOf(direction))), dryRun: false, permanent: true }) as Promise<{
      status: string;
      message: string;
      holdMs: number | null;
      failure?: { code: string; step?: { index: number } };
      rollback?: { complete: boolean };
    }>;
    await node.waitForLine(new RegExp(`^RELUP_FAULTS: step ${step - 1} \\(.*\\) paused$`), from);
    const sent = sendTraffic(node.view(), expectation);
    const landed = await sent.landed;
    if (landed !== undefined) problems.push(landed);
    if (!(await status(node)).upgrading) problems.push('status does not say upgrading during the step');
    problems.push(...heldProblems(sent, 'during the step'));
    node.signal('SIGUSR2');
    const o = await applied;
    outcome = o.status;
    if (o.status !== 'rolled-back') problems.push(`outcome ${o.status}, expected rolled-back`);
    if (o.failure?.step?.index !== step || o.failure.code !== 'process-stopped') problems.push(`the failure is reported at step ${o.failure?.step?.index ?? '(none)'} (${o.failure?.code ?? ''}), expected the migration (${step}, process-stopped)`);
    if (o.rollback?.complete !== true) problems.push('rollback incomplete');
    if (!o.message.includes(`step ${step + 1} (`) || !o.message.includes(`rolled back to ${boot}`)) problems.push(`the outcome says: ${o.message}`);
    if (o.holdMs === null) problems.push('the outcome reports no holdMs');
    if (!node.lines.some((l) => /process game died during the upgrade; the rollback restarted it/.test(l))) problems.push('the node did not log that the rollback restarted game');
    const results = await withTimeout(sent.settled, 5000, 'the traffic was not answered within 5 s');
    await realQuiet(node);
    const after = (await node.request('states', {})) as States;
    problems.push(...trafficProblems(before, after, results));
    const expected = await untouchedReference(image);
    if (canonical(after) !== expected) problems.push(...diffStates(JSON.parse(expected), after).map((d) => `state: ${d}`).slice(0, 4));
    const s = await status(node);
    // "every process resumed": game runs again (not suspended, not dead) and serves.
    problems.push(...runningProblems(s, image));
    problems.push(...(await servingProblems(node.port, boot)));
    const last = s.history.at(-1);
    if (last?.op !== 'apply' || last.status !== 'rolled-back' || !last.failedStep?.startsWith(`${step + 1} `)) problems.push(`history records ${last?.op} ${last?.status} at "${last?.failedStep ?? ''}", expected rolled-back at "${step + 1} …"`);
  } catch (e) {
    problems.push(`the cell could not run: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await node?.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return { direction, step, column: 'crash', outcome, problems, held: expectation === 'held', note: `RELUP_FAULTS=${step - 1}:pause,${step}:crash on a real node` };
}
