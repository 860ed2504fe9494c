import semver from 'semver';
import { remoteStatus, type RemoteStatus } from '../../client/upgrade.js';
import { EXIT_FAILED, NodeError, UserError } from '../../errors/errors.js';
import { connectTarget } from '../connect.js';
import type { CommandIo } from '../io.js';
import { projectOptions } from '../project-options.js';
import { applyTo, type ApplyArgs } from './apply-command.js';

/**
 * `relup rollback`: back to an older release through the appup's down path.
 * A rollback only ever goes back: to the newest installed release older than
 * the running one (the node's `previous`, OTP's `old` releases), or to
 * `--to VERSION` if that is older. So rolling back twice walks further back,
 * never forth; with nothing older installed it says so and exits 1.
 */
export async function run(raw: Record<string, unknown>, io: CommandIo): Promise<number> {
  const args = raw as unknown as ApplyArgs;
  const dirs = await projectOptions(args, io);
  const connection = await connectTarget(dirs.loaded, args.target);
  let status: RemoteStatus;
  try {
    status = await remoteStatus(connection);
  } finally {
    connection.close();
  }
  const choice = rollbackTarget(status, args.to);
  if (choice.to === undefined) {
    if (args.json === true) {
      io.stdout.write(`${JSON.stringify({ status: 'refused', ok: false, message: choice.message, version: status.version, failure: { code: choice.code, message: choice.message }, previous: status.previous }, null, 2)}\n`);
      return EXIT_FAILED;
    }
    throw new NodeError(choice.code, `${choice.code}: ${choice.message}`, choice.hint);
  }
  return applyTo({ ...args, to: choice.to }, io, 'rollback');
}

export type RollbackChoice = { to: string } | { to?: undefined; code: 'no-older-release'; message: string; hint: string };

/**
 * Where a rollback goes; pure. `previous` is filtered again here, because a
 * node of another runtime (or an older relup) may report releases that ran
 * before but are newer.
 */
export function rollbackTarget(status: Pick<RemoteStatus, 'name' | 'version' | 'previous'>, requested: string | undefined): RollbackChoice {
  const current = semver.valid(status.version);
  if (requested !== undefined) {
    const to = semver.valid(requested.replace(/^v/, ''));
    if (to === null) throw new UserError(`--to ${requested} is not a version`, 'e.g. relup rollback --to 1.2.2');
    if (current !== null && !semver.lt(to, current)) {
      throw new UserError(`--to ${requested}: a rollback goes to an older release, and ${status.name} runs ${status.version}`, `to move to ${to}, upgrade: relup apply --to ${to}`);
    }
    return { to };
  }
  const older = status.previous.filter((v) => current !== null && semver.valid(v) !== null && semver.lt(v, current)).sort(semver.rcompare);
  if (older[0] !== undefined) return { to: older[0] };
  return {
    code: 'no-older-release',
    message: `${status.name} ${status.version} has no older release installed to roll back to`,
    hint: 'relup status --target … lists the installed releases; relup rollback --to VERSION goes to an older release the node never ran (its bundle is uploaded)',
  };
}
