/**
 * The order of a rollout: the canary nodes first, alone, then waves of
 * `waveSize`, in the order the fleet lists its targets. Pure.
 */
export interface WaveOptions {
  /** Nodes in the canary wave (0: no canary). */
  canary: number;
  waveSize: number;
}

export interface Wave {
  index: number;
  kind: 'canary' | 'wave';
  nodes: string[];
}

export function planWaves(nodes: readonly string[], options: WaveOptions): Wave[] {
  const waves: Wave[] = [];
  const canary = Math.min(options.canary, nodes.length);
  if (canary > 0) waves.push({ index: 0, kind: 'canary', nodes: nodes.slice(0, canary) });
  for (let i = canary; i < nodes.length; i += options.waveSize) waves.push({ index: waves.length, kind: 'wave', nodes: nodes.slice(i, i + options.waveSize) });
  return waves;
}

/** `500ms`, `30s`, `2m`, `1h` → milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  if (m === null) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = n * unit;
  return Number.isSafeInteger(ms) ? ms : undefined;
}
