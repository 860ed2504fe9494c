/**
 * Loud skips for suites that need a runtime that may not be installed
 * (Erlang/OTP, Lua). A missing runtime never passes silently:
 * - by default its suites are skipped and a line says what was skipped and
 *   the command that installs the runtime;
 * - under `CI=true`, or when RELUP_REQUIRE_RUNTIMES names it
 *   (`RELUP_REQUIRE_RUNTIMES=erlang,lua`), a missing runtime FAILS the run.
 */
export type Availability = { ok: true } | { ok: false; reason: string; install: string };

export function requiredRuntimes(env: NodeJS.ProcessEnv = process.env): Set<string> {
  const named = (env['RELUP_REQUIRE_RUNTIMES'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (env['CI'] === 'true') named.push('erlang', 'lua');
  return new Set(named);
}

/**
 * True when `runtime` can run the suite `suite`. False (after printing why)
 * when it cannot and is not required; throws when it is required.
 */
export async function runtimeGate(runtime: string, suite: string, available: () => Promise<Availability>, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const a = await available();
  if (a.ok) return true;
  const line = `SKIPPED ${suite}: the ${runtime} runtime is not available (${a.reason}); install it with: ${a.install}`;
  if (requiredRuntimes(env).has(runtime)) {
    throw new Error(`${line}\n${runtime} is required here (CI=true or RELUP_REQUIRE_RUNTIMES), so this is a failure, not a skip`);
  }
  process.stderr.write(`\n*** ${line} ***\n\n`);
  return false;
}
