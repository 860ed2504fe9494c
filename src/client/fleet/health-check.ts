import type { Connection } from '../connection.js';

export interface HealthCheck {
  /** GET http://<host>:<port><path> on the node's service (its first HTTP server); 2xx is healthy. */
  path?: string;
  /** The service's port; default: the first server in the node's status (only Node.js nodes report servers). */
  port?: number;
  /** A function of the running release, called through the control channel; `true` or `{ ok: true }` is healthy. */
  invoke?: { module: string; function: string; args?: unknown[] };
  timeoutMs: number;
}

export interface HealthResult {
  ok: boolean;
  /** What failed, for the report. */
  detail: string;
}

/**
 * One health check of one node. Both parts must pass when both are given.
 * `host` is where the node's service listens: loopback for a Unix-socket
 * target, the target's host for TCP.
 */
export async function checkHealth(check: HealthCheck, connection: Connection, host: string): Promise<HealthResult> {
  try {
    return await check1(check, connection, host);
  } catch (e) {
    // The control channel itself failed (the node died, the network went): that is not healthy either.
    return { ok: false, detail: `the node did not answer: ${(e as Error).message}` };
  }
}

async function check1(check: HealthCheck, connection: Connection, host: string): Promise<HealthResult> {
  if (check.path !== undefined) {
    const port = check.port ?? ((await withTimeout(connection.request('status', {}), check.timeoutMs)) as { servers?: { port: number }[] }).servers?.[0]?.port;
    if (port === undefined) return { ok: false, detail: `health path ${check.path}: the node reports no HTTP server (Erlang and Lua nodes report none): give the service's port with --health-port or health.port` };
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${check.path}`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(check.timeoutMs) });
      await res.arrayBuffer();
      if (res.status < 200 || res.status > 299) return { ok: false, detail: `GET ${url} answered ${res.status}` };
    } catch (e) {
      return { ok: false, detail: `GET ${url} failed: ${(e as Error).message}` };
    }
  }
  if (check.invoke !== undefined) {
    const name = `${check.invoke.module}.${check.invoke.function}`;
    try {
      const result = await withTimeout(connection.request('invoke', { module: check.invoke.module, function: check.invoke.function, args: check.invoke.args ?? [] }), check.timeoutMs);
      const ok = result === true || (typeof result === 'object' && result !== null && (result as { ok?: unknown }).ok === true);
      if (!ok) return { ok: false, detail: `${name}() returned ${JSON.stringify(result)?.slice(0, 200)}` };
    } catch (e) {
      return { ok: false, detail: `${name}() failed: ${(e as Error).message}` };
    }
  }
  return { ok: true, detail: 'healthy' };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
