// The load generator: a separate process (child_process.fork from load-bench.js)
// that loads the demo service on 127.0.0.1 with two streams over HTTP keep-alive
// (undici):
//
//   - the rate stream: GET /hello?name=rN at a fixed rate (open loop: requests
//     are sent on schedule whether or not earlier ones were answered), over a
//     small pool of keep-alive connections. Each 2xx answer is one increment of
//     the route's accessCount, so GET /stats must equal the answers counted here;
//   - the long-lived connections: N undici Clients, one TCP connection each,
//     each sending POST /players/cN/score once a second and expecting the
//     player's new score in the answer (so every answer is checked on the spot:
//     a lost or double-counted message shows at once), and counting every
//     disconnect as a dropped connection.
//
// The parent drives it over IPC: start → (checkpoint)* → stop with the time
// windows to report on. Every request's start time and latency is kept, so
// latency can be attributed to any window afterwards. It stops by itself after
// config.maxDurationMs, and exits when the parent goes away.
import { Client, Pool } from 'undici';
import { performance } from 'node:perf_hooks';

const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Per-request records in growable typed arrays: start (absolute ms), latency (ms), stream, ok, failure reason. */
class Recorder {
  constructor(capacity = 1 << 17) {
    this.n = 0;
    this.start = new Float64Array(capacity);
    this.latency = new Float32Array(capacity);
    this.flags = new Uint8Array(capacity); // bit 0: long-lived stream; bit 1: ok
    this.reason = new Uint8Array(capacity); // index into reasons (0 = none)
    this.reasons = ['ok'];
  }
  add(start, latency, stream, ok, reason) {
    if (this.n === this.start.length) this.grow();
    const i = this.n++;
    this.start[i] = start;
    this.latency[i] = latency;
    this.flags[i] = (stream === 'long' ? 1 : 0) | (ok ? 2 : 0);
    if (!ok) {
      let k = this.reasons.indexOf(reason);
      if (k < 0) k = this.reasons.push(reason) - 1;
      this.reason[i] = Math.min(k, 255);
    }
  }
  grow() {
    const cap = this.start.length * 2;
    for (const [key, Ctor] of [['start', Float64Array], ['latency', Float32Array], ['flags', Uint8Array], ['reason', Uint8Array]]) {
      const next = new Ctor(cap);
      next.set(this[key]);
      this[key] = next;
    }
  }
}

const rec = new Recorder();
let cfg;
let pool;
let longs = [];
let paused = false;
let stopped = false;
let closing = false;
let rateTimer;
let inflightRate = 0;
let rateSeq = 0;
let rateBase = 0;
let rateSentSinceBase = 0;
const counters = { helloAnswered: 0, helloUnknown: 0, rateSkipped: 0, rateSent: 0, longSent: 0, longSkipped: 0, wrongAnswers: 0, nullReplies: 0, unexpectedBodies: 0 };
const drops = []; // { at, stream, reason }
const connectErrors = []; // { at, stream, reason }
let connects = { rate: 0, long: 0 };
const startedAt = nowMs();
let eluStart;

const reasonOf = (e) => e?.code ?? e?.cause?.code ?? e?.name ?? 'error';
/** Errors that prove the request never reached the service (so it cannot have been counted there). */
const neverSent = (reason) => reason === 'ECONNREFUSED' || reason === 'UND_ERR_CONNECT_TIMEOUT';

function keepAlive() {
  return { keepAliveTimeout: 60_000, keepAliveMaxTimeout: 120_000, headersTimeout: cfg.requestTimeoutMs, bodyTimeout: cfg.requestTimeoutMs, connect: { timeout: 5000 } };
}

function watch(dispatcher, stream) {
  dispatcher.on('connect', () => (connects[stream] += 1));
  dispatcher.on('disconnect', (_origin, _targets, err) => {
    if (closing) return;
    const reason = err?.code ?? err?.message ?? 'closed';
    drops.push({ at: nowMs(), stream, reason });
  });
  dispatcher.on('connectionError', (_origin, _targets, err) => {
    if (closing) return;
    connectErrors.push({ at: nowMs(), stream, reason: reasonOf(err) });
  });
}

// ---- the rate stream -------------------------------------------------------

function sendHello() {
  const seq = ++rateSeq;
  const t0 = nowMs();
  inflightRate += 1;
  counters.rateSent += 1;
  pool
    .request({ method: 'GET', path: `/hello?name=r${seq}` })
    .then(async (res) => {
      const text = await res.body.text();
      const ok = res.statusCode === 200 && text.includes('visitor #');
      if (ok) counters.helloAnswered += 1;
      else if (res.statusCode === 200) counters.unexpectedBodies += 1;
      rec.add(t0, nowMs() - t0, 'rate', ok, ok ? undefined : `HTTP ${res.statusCode}`);
    })
    .catch((e) => {
      const reason = reasonOf(e);
      if (!neverSent(reason)) counters.helloUnknown += 1;
      rec.add(t0, nowMs() - t0, 'rate', false, reason);
    })
    .finally(() => (inflightRate -= 1));
}

function rateTick() {
  if (paused || stopped || cfg.rate <= 0) return;
  const due = Math.floor(((nowMs() - rateBase) * cfg.rate) / 1000) - rateSentSinceBase;
  let n = due;
  // More than half a second behind (the generator was starved of CPU): those are not sent, and say so.
  const cap = Math.max(1, Math.floor(cfg.rate / 2));
  if (n > cap) {
    counters.rateSkipped += n - cap;
    rateSentSinceBase += n - cap;
    n = cap;
  }
  for (let i = 0; i < n; i++) {
    rateSentSinceBase += 1;
    if (inflightRate >= cfg.maxInflight) {
      counters.rateSkipped += 1;
      continue;
    }
    sendHello();
  }
}

// ---- the long-lived connections ---------------------------------------------

class LongLived {
  constructor(index) {
    this.id = `c${index}`;
    this.index = index;
    this.client = new Client(cfg.origin, { pipelining: 1, ...keepAlive() });
    watch(this.client, 'long');
    this.expected = 0; // the score the service must hold for this player
    this.uncertain = 0; // points of messages that failed after they may have reached the service
    this.seq = 0;
    this.busy = false;
    this.acked = 0; // score messages acknowledged since the player was (re)created
    this.lostPoints = 0;
    this.lostMessages = 0;
    this.lostPlayers = 0;
    this.appliedDespiteFailure = 0;
    this.mismatch = 0;
    this.timer = undefined;
  }

  async request(method, path, body) {
    const res = await this.client.request({ method, path, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
    const text = await res.body.text();
    return { status: res.statusCode, text, worker: res.headers['x-worker'] ?? 'single' };
  }

  async createPlayer() {
    const r = await this.request('POST', '/players', { id: this.id, name: `player ${this.index}` });
    if (r.status !== 201) throw new Error(`POST /players for ${this.id}: HTTP ${r.status} ${r.text}`);
    this.expected = 0;
    this.uncertain = 0;
    this.acked = 0;
  }

  /** The service no longer knows this player: everything it had is lost; start it again. */
  async lost(extra) {
    this.lostPoints += this.expected + extra;
    this.lostMessages += this.acked + (extra > 0 ? 1 : 0);
    this.lostPlayers += 1;
    try {
      await this.createPlayer();
    } catch {
      // Service unreachable: the next message will find the player missing again.
      this.expected = 0;
    }
  }

  /** Compare the service's score with ours; `points` were just added by this message (0 for a check). */
  reconcile(score, points) {
    const want = this.expected + points;
    if (points > 0) this.acked += 1;
    if (score === want) {
      this.expected = want;
      this.uncertain = 0;
      return true;
    }
    if (this.uncertain > 0 && score === want + this.uncertain) {
      // A message that failed on our side had reached the service: it counted, once.
      this.appliedDespiteFailure += this.uncertain;
      this.expected = score;
      this.uncertain = 0;
      return true;
    }
    this.mismatch += score - want;
    this.expected = score;
    this.uncertain = 0;
    return false;
  }

  schedule(at) {
    if (stopped) return;
    this.timer = setTimeout(() => this.tick(at), Math.max(0, at - nowMs()));
  }

  async tick(at) {
    this.schedule(at + cfg.intervalMs);
    if (paused || stopped) return;
    if (this.busy) {
      counters.longSkipped += 1; // the previous message is still unanswered after a whole second
      return;
    }
    this.busy = true;
    const points = 1 + (this.seq++ % 9);
    const t0 = nowMs();
    counters.longSent += 1;
    try {
      const r = await this.request('POST', `/players/${this.id}/score`, { points });
      const latency = nowMs() - t0;
      if (r.status !== 200) {
        rec.add(t0, latency, 'long', false, `HTTP ${r.status}`);
        this.uncertain += points;
      } else {
        const reply = JSON.parse(r.text);
        rec.add(t0, latency, 'long', true);
        if (reply === null) {
          counters.nullReplies += 1;
          await this.lost(points);
        } else if (!this.reconcile(reply.score, points)) {
          counters.wrongAnswers += 1;
        }
      }
    } catch (e) {
      const reason = reasonOf(e);
      rec.add(t0, nowMs() - t0, 'long', false, reason);
      if (!neverSent(reason)) this.uncertain += points;
    } finally {
      this.busy = false;
    }
  }

  /** At a checkpoint: read the player back over this connection. */
  async check() {
    try {
      const r = await this.request('GET', `/players/${this.id}`);
      if (r.status === 404) {
        await this.lost(0);
        return 'lost';
      }
      if (r.status !== 200) return 'error';
      return this.reconcile(JSON.parse(r.text).score, 0) ? 'exact' : 'mismatch';
    } catch {
      return 'error';
    }
  }
}

// ---- checkpoints ------------------------------------------------------------

async function drain(limitMs) {
  const until = nowMs() + limitMs;
  while ((inflightRate > 0 || longs.some((c) => c.busy)) && nowMs() < until) await sleep(2);
  return inflightRate + longs.filter((c) => c.busy).length;
}

/**
 * Pause both streams, wait until nothing is in flight, then compare what the
 * service holds with what it answered: /stats (per worker, summed) against the
 * /hello answers, and each player's score against the points acknowledged.
 */
async function checkpoint() {
  const t0 = nowMs();
  paused = true;
  const stillInFlight = await drain(cfg.requestTimeoutMs + 1000);
  const workers = new Map();
  const probes = longs.slice(0, Math.min(longs.length, 64));
  await Promise.all(
    probes.map(async (c) => {
      try {
        const s = await c.request('GET', '/stats');
        const v = await c.request('GET', '/version');
        if (s.status === 200) workers.set(s.worker, { ...JSON.parse(s.text), version: v.text });
      } catch {
        // unreachable worker: it shows up as missing counts
      }
    }),
  );
  if (probes.length === 0) {
    const res = await pool.request({ method: 'GET', path: '/stats' });
    workers.set(res.headers['x-worker'] ?? 'single', JSON.parse(await res.body.text()));
  }
  const observed = [...workers.values()].reduce((a, w) => a + (w.total ?? 0), 0);
  const errors = [...workers.values()].reduce((a, w) => a + (w.errors ?? 0), 0);
  const players = { checked: longs.length, exact: 0, mismatch: 0, lost: 0, error: 0 };
  const results = await Promise.all(longs.map((c) => c.check()));
  for (const r of results) players[r] += 1;
  const sum = (k) => longs.reduce((a, c) => a + c[k], 0);
  const result = {
    at: t0,
    stillInFlight,
    hello: { answered: counters.helloAnswered, counted: observed, missing: counters.helloAnswered - observed, answeredUnknown: counters.helloUnknown, errorsCounted: errors },
    workers: Object.fromEntries([...workers].map(([k, v]) => [k, { total: v.total, version: v.version }])),
    versions: [...new Set([...workers.values()].map((w) => w.version))],
    players: { ...players, lostPlayers: sum('lostPlayers'), lostPoints: sum('lostPoints'), lostMessages: sum('lostMessages'), mismatchPoints: sum('mismatch'), appliedDespiteFailure: sum('appliedDespiteFailure'), acknowledgedPoints: sum('expected'), acknowledgedMessages: sum('acked') },
    wrongAnswers: counters.wrongAnswers,
    nullReplies: counters.nullReplies,
  };
  result.exact = stillInFlight === 0 && result.hello.missing === 0 && players.exact === players.checked && result.players.lostPoints === 0 && result.players.mismatchPoints === 0 && counters.wrongAnswers === 0;
  paused = false;
  rateBase = nowMs();
  rateSentSinceBase = 0;
  result.pauseMs = nowMs() - t0;
  return result;
}

// ---- windows ----------------------------------------------------------------

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

/** Stats of the requests started in (mode 'start') or in flight during (mode 'overlap') any interval of a window. */
function windowStats(win) {
  const intervals = win.intervals;
  const inside = (s, l) => intervals.some(([a, b]) => (win.mode === 'overlap' ? s <= b && s + l >= a : s >= a && s <= b));
  const per = { rate: { lat: [], sent: 0, failed: 0 }, long: { lat: [], sent: 0, failed: 0 } };
  const reasons = {};
  for (let i = 0; i < rec.n; i++) {
    const s = rec.start[i];
    const l = rec.latency[i];
    if (!inside(s, l)) continue;
    const stream = rec.flags[i] & 1 ? per.long : per.rate;
    stream.sent += 1;
    if (rec.flags[i] & 2) stream.lat.push(l);
    else {
      stream.failed += 1;
      const why = rec.reasons[rec.reason[i]] ?? 'other';
      reasons[why] = (reasons[why] ?? 0) + 1;
    }
  }
  const seconds = intervals.reduce((a, [x, y]) => a + (y - x), 0) / 1000;
  const describe = (p) => {
    const s = Float64Array.from(p.lat).sort();
    return { sent: p.sent, answered: s.length, failed: p.failed, ratePerSec: seconds > 0 ? Math.round(p.sent / seconds) : null, p50: r3(percentile(s, 50)), p99: r3(percentile(s, 99)), max: r3(s.length ? s[s.length - 1] : null) };
  };
  const all = { lat: [...per.rate.lat, ...per.long.lat], sent: per.rate.sent + per.long.sent, failed: per.rate.failed + per.long.failed };
  const inWindow = (d) => intervals.some(([a, b]) => d.at >= a && d.at <= b);
  // For a single interval, a timeline in slices: when, within the window, requests were slow or failed.
  let timeline;
  if (win.sliceMs && intervals.length === 1) {
    const [a, b] = intervals[0];
    const n = Math.ceil((b - a) / win.sliceMs);
    const slices = Array.from({ length: n }, (_, k) => ({ atMs: k * win.sliceMs, sent: 0, failed: 0, maxMs: 0 }));
    for (let i = 0; i < rec.n; i++) {
      const st = rec.start[i];
      if (st < a || st > b) continue;
      const sl = slices[Math.min(n - 1, Math.floor((st - a) / win.sliceMs))];
      sl.sent += 1;
      if (rec.flags[i] & 2) sl.maxMs = Math.max(sl.maxMs, Math.round(rec.latency[i] * 10) / 10);
      else sl.failed += 1;
    }
    timeline = slices;
  }
  return {
    name: win.name,
    mode: win.mode ?? 'start',
    seconds: Math.round(seconds * 1000) / 1000,
    all: describe(all),
    rate: describe(per.rate),
    long: describe(per.long),
    failuresByReason: reasons,
    droppedLongLived: drops.filter((d) => d.stream === 'long' && inWindow(d)).length,
    droppedPool: drops.filter((d) => d.stream === 'rate' && inWindow(d)).length,
    ...(timeline === undefined ? {} : { timeline }),
  };
}

// ---- control ----------------------------------------------------------------

async function start(config) {
  cfg = { requestTimeoutMs: 10_000, maxInflight: 4000, intervalMs: 1000, ...config };
  pool = new Pool(cfg.origin, { connections: cfg.poolConnections, pipelining: 1, ...keepAlive() });
  watch(pool, 'rate');
  longs = Array.from({ length: cfg.longLived }, (_, i) => new LongLived(i));
  // Open the long-lived connections and create their players, spread over openSpreadMs.
  const spread = cfg.openSpreadMs ?? cfg.intervalMs;
  await Promise.all(
    longs.map(async (c) => {
      await sleep((c.index / Math.max(1, longs.length)) * spread);
      await c.createPlayer();
    }),
  );
  const t = nowMs();
  for (const c of longs) c.schedule(t + (c.index / Math.max(1, longs.length)) * cfg.intervalMs);
  rateBase = nowMs();
  rateSentSinceBase = 0;
  rateTimer = setInterval(rateTick, 2);
  eluStart = performance.eventLoopUtilization();
  // Bounded in time whatever happens to the parent.
  setTimeout(() => {
    stopped = true;
  }, cfg.maxDurationMs).unref();
  setTimeout(() => process.exit(3), cfg.maxDurationMs + 60_000).unref();
}

async function stop(windows) {
  stopped = true;
  clearInterval(rateTimer);
  for (const c of longs) clearTimeout(c.timer);
  const left = await drain(cfg.requestTimeoutMs + 1000);
  closing = true;
  const elu = performance.eventLoopUtilization(eluStart);
  const cpu = process.cpuUsage();
  await Promise.all([pool.destroy(), ...longs.map((c) => c.client.destroy())]);
  return {
    windows: windows.map(windowStats),
    counters: { ...counters, inflightAtStop: left },
    connects,
    drops: { longLived: drops.filter((d) => d.stream === 'long').length, pool: drops.filter((d) => d.stream === 'rate').length, reasons: countBy(drops.map((d) => d.reason)), firstAt: drops[0]?.at ?? null },
    connectErrors: { count: connectErrors.length, reasons: countBy(connectErrors.map((d) => d.reason)) },
    generator: { eventLoopUtilization: Math.round(elu.utilization * 1000) / 1000, cpuSeconds: Math.round((cpu.user + cpu.system) / 1e4) / 100, wallSeconds: Math.round((nowMs() - startedAt) / 10) / 100, records: rec.n },
  };
}

function countBy(list) {
  const out = {};
  for (const x of list) out[x] = (out[x] ?? 0) + 1;
  return out;
}

process.on('disconnect', () => process.exit(0));
process.on('message', async (msg) => {
  try {
    if (msg.type === 'start') {
      await start(msg.config);
      process.send({ type: 'started', at: nowMs() });
    } else if (msg.type === 'checkpoint') {
      process.send({ type: 'checkpoint', id: msg.id, result: await checkpoint() });
    } else if (msg.type === 'stop') {
      const report = await stop(msg.windows);
      process.send({ type: 'report', report }, () => process.exit(0));
    }
  } catch (e) {
    process.send({ type: 'error', message: e?.stack ?? String(e) }, () => process.exit(1));
  }
});
