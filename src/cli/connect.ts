import { Connection } from '../client/connection.js';
import type { LoadedConfig } from '../config/load-config.js';
import { resolveTarget } from '../config/load-config.js';

/** Connect to `--target` (or the configured default target). */
export async function connectTarget(loaded: LoadedConfig, target: string | undefined, timeoutMs?: number): Promise<Connection> {
  const resolved = resolveTarget(loaded, target);
  return Connection.open(resolved.target, { clientName: 'relup-cli', ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}
