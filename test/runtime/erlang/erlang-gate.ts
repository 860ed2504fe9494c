import { erlangAvailable } from '../../../src/runtime/erlang/erlang-driver.js';
import { runtimeGate } from '../../helpers/runtimes.js';

/**
 * Whether this file's Erlang tests can run: `erl` and `erlc` installed. A
 * missing Erlang is a loud skip naming `label` and the install command, and
 * a failure under CI=true (test/helpers/runtimes.ts).
 */
export function erlangGate(label: string): Promise<boolean> {
  return runtimeGate('erlang', label, async () => {
    const a = await erlangAvailable();
    return a.ok ? { ok: true } : a;
  });
}
