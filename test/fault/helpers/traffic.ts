import { request as httpRequest } from 'node:http';
import type { States } from './demo.js';

/**
 * The traffic of the matrix: what is sent to a node before an attempt (the
 * warm-up), and the known set sent while a step is in progress, whose every
 * message must be handled exactly once whatever the fault does.
 *
 * Where it is handled depends on the step (node-steps.ts, rollback rules):
 * before the transaction passes its point of no return, outside work runs at
 * once on the old code; from then until the transaction settles it is *held*
 * at the node's entry — HTTP requests, timer ticks, control-socket calls,
 * casts and invokes wait, none fails — and runs after the outcome on the
 * final code and state.
 */

export interface ProcessInfo {
  name: string;
  suspended: boolean;
  mailbox: number;
  handling: boolean;
}

/** Work that reached the node's entry (see in-process.ts `spyEntries`), and how much of it started to run. */
export interface EntryCount {
  arrived: number;
  started: number;
}

/** How the traffic reaches a node: HTTP on its port, and casts, calls, invokes and status through the node's API or its control socket. */
export interface NodeView {
  port: number;
  /** A cast to the game process from outside the node: `invoke game.tick` (`relup.cast('game', { type: 'tick' })`). */
  tick(): Promise<unknown>;
  /** A call to the game process from outside the node. */
  call(message: unknown): Promise<unknown>;
  /** `module.fn(...args)` of the current code, from outside the node. */
  invoke(module: string, fn: string, args: unknown[]): Promise<unknown>;
  processes(): Promise<ProcessInfo[]>;
  /**
   * In process only: the node's entry counted exactly (arrived at it, started
   * to run). A real node has no such count; a status round trip over the
   * control connection that carried the calls stands in for it.
   */
  entries?: () => EntryCount;
}

export interface HttpReply {
  status: number;
  text: string;
}

/**
 * One request on its own connection (no agent queue: a request waiting for a
 * suspended process or held at the node's entry must not hold up the
 * others). `onSent`: the whole request was handed to the OS.
 */
export function http(port: number, method: string, path: string, body?: unknown, timeoutMs = 10_000, onSent?: () => void): Promise<HttpReply> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, method, path, agent: false, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    if (onSent !== undefined) req.on('finish', onSent);
    req.end(payload);
  });
}

/** State everywhere before the attempt: a player with a score, route counts, a changed setting, a tick. */
export async function warmUp(view: NodeView): Promise<void> {
  const expect = async (p: Promise<HttpReply>, status: number) => {
    const r = await p;
    if (r.status !== status) throw new Error(`warm-up: HTTP ${r.status} ${r.text}`);
  };
  await expect(http(view.port, 'POST', '/players', { id: 'p1', name: 'Ann' }), 201);
  await expect(http(view.port, 'POST', '/players/p1/score', { points: 70 }), 200);
  await expect(http(view.port, 'GET', '/hello?name=a'), 200);
  await expect(http(view.port, 'GET', '/hello?name=b'), 200);
  await expect(http(view.port, 'PUT', '/config/timeout', { value: 45 }), 200);
  await view.tick();
  await view.call({ type: 'stats' });
}

interface Message {
  label: string;
  /** Goes through the game process's mailbox. */
  game: boolean;
  /** How many times it passes the node's entry (one per request, call or invoke). */
  entries: number;
  /** Send it; `onSent` once it is on its way (handed to the OS, or to the control connection). */
  send(view: NodeView, onSent: () => void): Promise<{ ok: boolean; detail: string }>;
}

const httpMessage = (label: string, game: boolean, method: string, path: string, body: unknown, ok: number[]): Message => ({
  label,
  game,
  entries: 1,
  send: async (view, onSent) => {
    const r = await http(view.port, method, path, body, 10_000, onSent);
    return { ok: ok.includes(r.status), detail: `HTTP ${r.status}${ok.includes(r.status) ? '' : ` ${r.text.slice(0, 80)}`}` };
  },
});

/** The setting the ordered pair of invokes writes, and the values in the order they are sent. */
const ORDERED = { key: 'max_connections', values: [500, 600] } as const;

/**
 * The known set sent during a step. Its effect does not depend on the order
 * in which the messages arrive (they come over separate connections), except
 * for the ordered pair, sent back to back over one channel: a reference node
 * that gets them one by one ends in the same state, and the pair shows that
 * held work runs in the order it arrived.
 */
export const TRAFFIC: readonly Message[] = [
  httpMessage('GET /hello?name=t1', false, 'GET', '/hello?name=t1', undefined, [200]),
  httpMessage('GET /hello?name=t2', false, 'GET', '/hello?name=t2', undefined, [200]),
  // 1.2.3 answers 400 (and counts an error), 1.2.2 answers 200: whichever code is current.
  httpMessage('GET /hello', false, 'GET', '/hello', undefined, [200, 400]),
  httpMessage('PUT /config/timeout 77', false, 'PUT', '/config/timeout', { value: 77 }, [200]),
  httpMessage('POST /players/p1/score 15 (a)', true, 'POST', '/players/p1/score', { points: 15 }, [200]),
  httpMessage('POST /players/p1/score 15 (b)', true, 'POST', '/players/p1/score', { points: 15 }, [200]),
  { label: 'cast tick (a)', game: true, entries: 1, send: async (view, onSent) => (await sentAt(view.tick(), onSent), { ok: true, detail: 'sent' }) },
  { label: 'cast tick (b)', game: true, entries: 1, send: async (view, onSent) => (await sentAt(view.tick(), onSent), { ok: true, detail: 'sent' }) },
  {
    label: 'call get_player p1',
    game: true,
    entries: 1,
    send: async (view, onSent) => {
      const reply = (await sentAt(view.call({ type: 'get_player', id: 'p1' }), onSent)) as { name?: string } | null;
      return { ok: reply?.name === 'Ann', detail: JSON.stringify(reply) };
    },
  },
  {
    label: `invoke config.set ${ORDERED.key} ${ORDERED.values.join(', then ')}`,
    game: false,
    entries: ORDERED.values.length,
    send: async (view, onSent) => {
      // Back to back, without waiting for the first answer: one control connection (or the in-process API) keeps their order.
      const replies = ORDERED.values.map((v) => view.invoke('config', 'set', [ORDERED.key, v]));
      onSent();
      const got = await Promise.all(replies);
      return { ok: got.every((g, i) => g === ORDERED.values[i]), detail: JSON.stringify(got) };
    },
  },
];
const GAME_MESSAGES = TRAFFIC.filter((m) => m.game).length;
/** How many times the traffic passes the node's entry. */
export const TRAFFIC_ENTRIES = TRAFFIC.reduce((n, m) => n + m.entries, 0);
/** What the traffic adds, counted exactly once: route.accessCount, game ticks, p1's score; and the settings it writes (the ordered pair last). */
export const TRAFFIC_EFFECT = { hits: 3, ticks: 2, score: 30, timeout: 77, ordered: ORDERED.values.at(-1)! };

/** A control-socket request or an API call is on its way as soon as it is made. */
function sentAt<T>(p: Promise<T>, onSent: () => void): Promise<T> {
  onSent();
  return p;
}

export interface TrafficResult {
  label: string;
  ok: boolean;
  detail: string;
  /** performance.now() when it was answered (or failed). */
  at: number;
}

/**
 * How the traffic is expected to be treated at the step where it is sent:
 * `handled` (no hold: answered during the step, game messages possibly
 * waiting in a suspended process's mailbox) or `held` (past the point of no
 * return: every message waits at the node's entry, none is answered, until
 * the transaction settles).
 */
export type Expectation = 'handled' | 'held';

export interface Sent {
  expectation: Expectation;
  /**
   * Resolves once every message reached the node — `handled`: answered, or
   * waiting in the game's mailbox; `held`: arrived at the node's entry, where
   * it waits — or with a problem when it did not within the time.
   */
  landed: Promise<string | undefined>;
  /** Every message's result once all are answered (or failed). */
  settled: Promise<TrafficResult[]>;
  /** The messages answered (or failed) so far. */
  answered(): TrafficResult[];
  /** The node's entry counts since the traffic was sent (in process only). */
  entries(): EntryCount | undefined;
}

/** Send the traffic now, all at once. */
export function sendTraffic(view: NodeView, expectation: Expectation, landTimeoutMs = 5000): Sent {
  const done: TrafficResult[] = [];
  const base = view.entries?.();
  const entries = (): EntryCount | undefined => {
    const now = view.entries?.();
    return now === undefined || base === undefined ? undefined : { arrived: now.arrived - base.arrived, started: now.started - base.started };
  };
  let unsent = TRAFFIC.length;
  const results = TRAFFIC.map((m) => {
    let counted = false;
    const onSent = () => {
      if (!counted) unsent -= 1;
      counted = true;
    };
    const record = (r: Omit<TrafficResult, 'at'>): TrafficResult => {
      const result = { ...r, at: performance.now() };
      done.push(result);
      return result;
    };
    return m.send(view, onSent).then(
      (r) => record({ label: m.label, ...r }),
      (e: unknown) => record({ label: m.label, ok: false, detail: e instanceof Error ? e.message : String(e) }),
    );
  });
  const has = (label: string) => done.some((r) => r.label === label);
  const landed = (async (): Promise<string | undefined> => {
    const end = Date.now() + landTimeoutMs;
    if (expectation === 'held') {
      while (Date.now() < end) {
        const e = entries();
        if (e !== undefined ? e.arrived >= TRAFFIC_ENTRIES : unsent === 0) break;
        await new Promise((r) => setTimeout(r, 1));
      }
      const e = entries();
      if (e !== undefined) {
        if (e.arrived < TRAFFIC_ENTRIES) return `held: only ${e.arrived} of ${TRAFFIC_ENTRIES} requests and calls reached the node's entry within ${landTimeoutMs} ms`;
        if (e.arrived > TRAFFIC_ENTRIES) return `duplicated: ${e.arrived} entries into the node for ${TRAFFIC_ENTRIES} requests and calls`;
        return undefined;
      }
      if (unsent > 0) return `held: ${unsent} messages could not be sent within ${landTimeoutMs} ms`;
      // A real node: status round trips over the control connection that carried the calls and casts
      // (requests on one connection are dispatched in order) give the HTTP requests, handed to the OS, time to arrive too.
      for (let i = 0; i < 3; i++) await view.processes();
      return undefined;
    }
    while (Date.now() < end) {
      const others = TRAFFIC.every((m) => m.game || has(m.label));
      if (others) {
        const game = (await view.processes()).find((p) => p.name === 'game');
        // A suspended (or busy) process holds every game message in its mailbox; a running one answers them all.
        if (game === undefined || game.suspended || game.handling) {
          if (game === undefined || game.mailbox >= GAME_MESSAGES) return undefined;
        } else if (TRAFFIC.every((m) => has(m.label)) && game.mailbox === 0) return undefined;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    return `handled: the traffic was not answered during the step (${done.length} of ${TRAFFIC.length} answered within ${landTimeoutMs} ms)`;
  })();
  return { expectation, landed, settled: Promise.all(results), answered: () => [...done], entries };
}

/**
 * While the traffic must be held: nothing answered, nothing started to run
 * (in process, where the entry is counted). `when`: the moment checked.
 */
export function heldProblems(sent: Sent, when: string): string[] {
  if (sent.expectation !== 'held') return [];
  const problems: string[] = [];
  const early = sent.answered();
  if (early.length > 0) problems.push(`not held: ${early.map((r) => `${r.label} (${r.ok ? 'answered' : `failed: ${r.detail}`})`).join(', ')} ${when}`);
  const e = sent.entries();
  if (e !== undefined && e.started > 0) problems.push(`not held: ${e.started} of ${TRAFFIC_ENTRIES} requests and calls started to run ${when}`);
  return problems;
}

/** Problems with how the traffic was handled: each message answered, each counted exactly once, the ordered pair in order. */
export function trafficProblems(before: States, after: States, results: readonly Pick<TrafficResult, 'label' | 'ok' | 'detail'>[]): string[] {
  const problems = results.filter((r) => !r.ok).map((r) => `lost: ${r.label} (${r.detail})`);
  const num = (v: unknown) => (typeof v === 'number' ? v : NaN);
  const route = (s: States) => num((s.modules['route'] as { accessCount?: unknown } | undefined)?.accessCount);
  const game = (s: States) => s.processes['game'] as { ticks?: unknown; players?: Record<string, { score?: unknown }> } | undefined;
  const ticks = (s: States) => num(game(s)?.ticks);
  const score = (s: States) => num(game(s)?.players?.['p1']?.score);
  const settings = (s: States) => (s.modules['config'] as { settings?: Record<string, unknown> } | undefined)?.settings;
  const count = (what: string, delta: number, sent: number) => {
    if (delta === sent) return;
    if (Number.isNaN(delta)) problems.push(`${what}: gone`);
    else problems.push(delta < sent ? `undone: ${what} +${delta} of +${sent} sent` : `duplicated: ${what} +${delta} of +${sent} sent`);
  };
  count('route.accessCount', route(after) - route(before), TRAFFIC_EFFECT.hits);
  count('game ticks', ticks(after) - ticks(before), TRAFFIC_EFFECT.ticks);
  count('p1 score', score(after) - score(before), TRAFFIC_EFFECT.score);
  const timeout = settings(after)?.['timeout'];
  if (timeout !== TRAFFIC_EFFECT.timeout) problems.push(`undone: config timeout is ${JSON.stringify(timeout)}, PUT 77 was answered`);
  const ordered = settings(after)?.[ORDERED.key];
  if (ordered !== TRAFFIC_EFFECT.ordered) problems.push(`out of order: config ${ORDERED.key} is ${JSON.stringify(ordered)}, ${ORDERED.values.join(' then ')} were sent in that order`);
  const sent = new Set(TRAFFIC.map((m) => m.label));
  const answered = results.map((r) => r.label);
  if (answered.length !== new Set(answered).size || answered.some((l) => !sent.has(l)) || sent.size !== answered.length) problems.push(`the traffic's results do not match what was sent: ${answered.join(', ')}`);
  return problems;
}
