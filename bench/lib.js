// Small helpers shared by the benchmarks: statistics, clocks, ports, processes.
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
/** The CLI as shipped (package.json bin): the esbuild bundle's launcher. */
export const CLI = fileURLToPath(new URL('../dist/cli/bundle/relup.js', import.meta.url));

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export const nowMs = () => performance.timeOrigin + performance.now();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const round = (x, digits = 2) => (x === null || x === undefined || Number.isNaN(x) ? null : Math.round(x * 10 ** digits) / 10 ** digits);

/** Nearest-rank percentile of an ascending sorted numeric array (null when empty). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return null;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** p50/p99/max (and count) of a list of numbers. */
export function summary(values) {
  const s = Float64Array.from(values).sort();
  return { count: s.length, p50: round(percentile(s, 50), 3), p99: round(percentile(s, 99), 3), max: round(s.length === 0 ? null : s[s.length - 1], 3) };
}

/** A TCP port that was free a moment ago on 127.0.0.1 (for services that must keep one port across restarts). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ port: 0, host: '127.0.0.1' }, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Is a process with this pid alive? */
export function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  try {
    // A zombie (exited, not yet reaped by its parent) is not running.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

/** Wait until none of `pids` runs (up to `ms`); the ones still running. */
export async function waitGone(pids, ms = 3000) {
  const until = Date.now() + ms;
  let left = survivors(pids);
  while (left.length > 0 && Date.now() < until) {
    await sleep(50);
    left = survivors(left);
  }
  return left;
}

/** Processes still running, of the pids given. */
export const survivors = (pids) => pids.filter((p) => Number.isInteger(p) && p > 0 && alive(p));

/**
 * Pids of the processes whose environment holds `entry` exactly (e.g.
 * `PM2_HOME=/tmp/x`): finds a daemon and its workers without asking the
 * daemon. Linux only (/proc); elsewhere an empty list.
 */
export function pidsWithEnv(entry) {
  const out = [];
  let names = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry) && alive(Number(name))) out.push(Number(name));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

/** a / b, or null when it is undefined (b = 0: both zero, or only relup has some). */
export function ratio(a, b) {
  if (a === null || b === null || a === undefined || b === undefined || b === 0) return null;
  return round(a / b, 4);
}

/** Set once the run is interrupted: nothing new is started after that. */
let stopping = false;
export function markStopping() {
  stopping = true;
}
/** Throws once the run is interrupted; called before every child process is started. */
export function assertRunning() {
  if (stopping) throw new Error('interrupted');
}

/** Cleanup callbacks run once, on normal exit of the run or on SIGINT/SIGTERM. */
const cleanups = new Set();
let cleaning;
export function onCleanup(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}
/** Run every registered cleanup, newest first; concurrent callers share one pass. */
export function runCleanups() {
  cleaning ??= (async () => {
    while (cleanups.size > 0) {
      const fns = [...cleanups].reverse();
      cleanups.clear();
      for (const fn of fns) {
        try {
          await fn();
        } catch (e) {
          process.stderr.write(`cleanup: ${e?.message ?? e}\n`);
        }
      }
    }
  })().finally(() => {
    cleaning = undefined;
  });
  return cleaning;
}
