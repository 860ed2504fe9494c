// The Erlang benches' load generator: a separate process (child_process.fork
// from erlang-bench.js), so its own CPU use and garbage collection are not
// in the bench's process, which times the upgrades. It loads the Erlang demo's
// line-protocol TCP service (examples/erlang: chat_server + the game
// gen_server) on 127.0.0.1 with the two streams of the Node.js load bench
// (bench/load-generator.js), so both runtimes are measured under the same kind
// of load:
//
//   - the rate stream: `score 1` and `ping` lines, alternately, at a fixed
//     rate (open loop: sent on schedule whether or not earlier ones were
//     answered), spread over a small pool of connections (answers come back in
//     order on each connection, so each answer is matched to its request);
//   - the long-lived connections: N connections, each named `c<i>`, each
//     sending `score 1` once a second and checking the score in the answer
//     (the player's count of acknowledged points: an answer that is not the
//     next count is a lost or doubled update, seen at once). A close the
//     generator did not ask for is a dropped connection.
//
// `score` goes through the game gen_server, which an upgrade suspends; `ping`
// is answered by the connection's own actor. With `reconnect`, a closed
// connection is opened again (a restart on the same port); without it, a
// dropped connection stays dropped. `prefix` names the players of a run
// apart from an earlier run's on the same node (their scores start at 0). The parent drives it over IPC:
// {cmd: 'start', …} → {type: 'started'}; {cmd: 'stop'} → {type: 'report', …}.
// It stops by itself after maxDurationMs and exits when the parent goes away.
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let cfg;
let stopping = false;
const counters = { rateSent: 0, rateOk: 0, rateFailed: 0, rateSkipped: 0, longSent: 0, longOk: 0, longFailed: 0, wrongScores: 0, reconnects: 0 };
const drops = []; // { at, stream, index }
const failures = []; // { at, stream, reason } (first 50)
// Every answered request: start (absolute ms) and latency, so the parent can look at any time window.
const starts = [];
const latencies = [];
const sockets = new Set();

function fail(stream, reason) {
  counters[stream === 'rate' ? 'rateFailed' : 'longFailed'] += 1;
  if (failures.length < 50) failures.push({ at: nowMs(), stream, reason });
}

/**
 * One line-protocol connection named `name`: `send(line, check)` queues a
 * request; answers are matched in order. `onClose(dropped)` when it closes.
 */
function lineConnection(name, stream, index, onReady, onClose) {
  const socket = connect(cfg.port, '127.0.0.1');
  socket.setNoDelay(true);
  sockets.add(socket);
  const pending = []; // { t0, check }
  let buffer = '';
  let named = false;
  const conn = {
    socket,
    pending,
    open: false,
    send(line, check) {
      if (!conn.open) return false;
      pending.push({ t0: nowMs(), check });
      socket.write(`${line}\n`);
      return true;
    },
  };
  socket.on('connect', () => socket.write(`name ${name}\n`));
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    let k;
    while ((k = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, k);
      buffer = buffer.slice(k + 1);
      if (!named) {
        named = true;
        conn.open = line === 'ok';
        if (conn.open) onReady(conn);
        else socket.destroy();
        continue;
      }
      const p = pending.shift();
      if (p === undefined) continue;
      const t1 = nowMs();
      starts.push(p.t0);
      latencies.push(t1 - p.t0);
      const problem = p.check(line);
      if (problem === null) counters[stream === 'rate' ? 'rateOk' : 'longOk'] += 1;
      else fail(stream, problem);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    sockets.delete(socket);
    // A connection that never opened (refused while a restarted service is not up yet) is not a drop.
    const wasOpen = conn.open;
    conn.open = false;
    // Requests sent and never answered failed.
    for (const _ of pending.splice(0)) fail(stream, 'connection closed before the answer');
    if (!stopping && wasOpen) drops.push({ at: nowMs(), stream, index });
    if (!stopping) onClose(wasOpen);
  });
  return conn;
}

/** `score N` or `score N, level L`: the N, or null. */
const scoreOf = (line) => {
  const m = /^score (\d+)/.exec(line);
  return m === null ? null : Number(m[1]);
};

/** Resolves when the connection first opens (named). */
function longLived(i) {
  let acked = 0;
  let timer;
  let opened;
  const first = new Promise((r) => (opened = r));
  const open = () =>
    lineConnection(
      `${cfg.prefix ?? ''}c${i}`,
      'long',
      i,
      (conn) => {
        opened();
        const tick = () => {
          if (stopping || !conn.open) return;
          // One request at a time: an unanswered one is not followed by the next.
          if (conn.pending.length === 0) {
            counters.longSent += 1;
            conn.send('score 1', (line) => {
              const n = scoreOf(line);
              if (n === null) return `unexpected answer: ${line}`;
              if (n !== acked + 1) {
                counters.wrongScores += 1;
                acked = n;
                return null;
              }
              acked = n;
              return null;
            });
          }
          timer = setTimeout(tick, 1000);
        };
        // Spread the connections' ticks over the second.
        timer = setTimeout(tick, Math.floor((i * 1000) / cfg.longLived));
      },
      (wasOpen) => {
        clearTimeout(timer);
        // A connection refused before it ever opened (the listen backlog overflowed by the burst of opens) is tried again.
        if (cfg.reconnect || !wasOpen) {
          if (wasOpen) counters.reconnects += 1;
          setTimeout(open, 50);
        }
      },
    );
  open();
  return first;
}

async function ratePool() {
  const pool = [];
  let ready;
  const allOpen = new Promise((r) => (ready = r));
  for (let k = 0; k < cfg.pool; k++) {
    const open = () =>
      lineConnection(
        `${cfg.prefix ?? ''}r${k}`,
        'rate',
        k,
        (conn) => {
          pool[k] = conn;
          if (pool.filter(Boolean).length === cfg.pool) ready();
        },
        () => {
          pool[k] = undefined;
          if (cfg.reconnect) setTimeout(open, 50);
        },
      );
    open();
  }
  // The schedule starts once every pool connection is open (a request with nowhere to go is a failure).
  await allOpen;
  let seq = 0;
  const base = nowMs();
  let sent = 0;
  const step = () => {
    if (stopping) return;
    // Open loop: catch up with the schedule (a late timer sends the requests it owes).
    const due = Math.floor(((nowMs() - base) * cfg.rate) / 1000);
    while (sent < due) {
      sent += 1;
      seq += 1;
      const conn = pool[seq % cfg.pool];
      if (conn === undefined || !conn.open) {
        // Nowhere to send it: the service is down (a restart), a failed request.
        counters.rateSent += 1;
        fail('rate', 'no open connection');
        continue;
      }
      counters.rateSent += 1;
      if (seq % 2 === 0) conn.send('ping', (line) => (line.startsWith('pong') ? null : `unexpected answer: ${line}`));
      else conn.send('score 1', (line) => (scoreOf(line) === null ? `unexpected answer: ${line}` : null));
    }
    setTimeout(step, 2);
  };
  step();
}

async function start(c) {
  cfg = c;
  await ratePool();
  const opened = [];
  for (let i = 0; i < cfg.longLived; i++) {
    opened.push(longLived(i));
    // Open the long-lived connections over openSpreadMs, as the Node.js bench does.
    if (i % 50 === 49) await sleep(Math.floor((cfg.openSpreadMs * 50) / cfg.longLived));
  }
  // Started once every long-lived connection is open (or 20 s passed: the report says how many opened).
  let open = 0;
  for (const p of opened) p.then(() => (open += 1));
  await Promise.race([Promise.all(opened), sleep(20_000)]);
  counters.longLivedOpen = open;
  setTimeout(() => report('maxDurationMs reached').then(() => process.exit(0)), cfg.maxDurationMs).unref();
}

async function report(why) {
  stopping = true;
  // Answers in flight get a moment, then every socket is closed by us (not a drop).
  await sleep(200);
  for (const s of sockets) s.destroy();
  const l = Float64Array.from(latencies);
  const s = Float64Array.from(starts);
  // Resolved once the (large) report has left: exiting before would lose it.
  await new Promise((resolve) => (process.send ? process.send({ type: 'report', why, counters, drops, failures, starts: Array.from(s), latencies: Array.from(l) }, resolve) : resolve()));
}

process.on('message', async (m) => {
  if (m.cmd === 'start') {
    await start(m.config);
    process.send({ type: 'started' });
  } else if (m.cmd === 'stop') {
    await report('stopped');
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
