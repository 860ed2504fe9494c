import type { CommandIo } from '../io.js';
import { applyTo, type ApplyArgs } from './apply-command.js';

/** `relup rollback`: back to the previous release (or --to VERSION) through the appup's down path. */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  return applyTo(raw as unknown as ApplyArgs, io, 'rollback');
}
