/**
 * An appup, normalised: how to reach `version` from earlier versions (`up`)
 * and how to go back from it (`down`). Entries are tried in order and the
 * first whose version pattern matches wins. Every item carries its line.
 */
export interface Appup {
  /** Path as shown in diagnostics. */
  file: string;
  version: string;
  up: AppupEntry[];
  down: AppupEntry[];
  line: number;
}

export interface AppupEntry {
  /** An exact version (`1.2.2`) or a semver range (`>=1.2.0 <1.2.3`, `^1.1.0`), as written. */
  versions: string;
  instructions: Instruction[];
  line: number;
}

export type PurgeMode = 'soft' | 'brutal';
export type ModuleMode = 'dynamic' | 'static';

interface Base {
  /** 1-based line of the instruction in the appup file. */
  line: number;
}

export interface LoadInstruction extends Base {
  op: 'load';
  module: string;
  /** Explicit dependencies; `undefined` means "take them from the release manifest". */
  deps: string[] | undefined;
  purge: PurgeMode;
}

export interface UpdateInstruction extends Base {
  op: 'update';
  module: string;
  deps: string[] | undefined;
  purge: PurgeMode;
  /**
   * Name of the function that migrates state in this entry's direction. On the
   * way up it lives in the newer module; on the way down it lives in the newer
   * module for `dynamic` modules (run before the switch) and in the older one
   * for `static` modules (run after it). `undefined`: state is kept as is.
   */
  migration: string | undefined;
  /** Handed to the migration function as `info.extra` (OTP's Extra). */
  extra: unknown;
  /** Milliseconds to wait for each process to reach a point where it can be suspended. */
  timeout: number;
  mode: ModuleMode;
}

export interface AddInstruction extends Base {
  op: 'add';
  module: string;
  deps: string[] | undefined;
}

export interface DeleteInstruction extends Base {
  op: 'delete';
  module: string;
  purge: PurgeMode;
}

export interface ApplyInstruction extends Base {
  op: 'apply';
  module: string;
  function: string;
  args: unknown[];
}

export interface RestartInstruction extends Base {
  op: 'restart';
  process: string;
}

export type Instruction =
  | LoadInstruction
  | UpdateInstruction
  | AddInstruction
  | DeleteInstruction
  | ApplyInstruction
  | RestartInstruction;

export type ModuleInstruction = LoadInstruction | UpdateInstruction | AddInstruction | DeleteInstruction;

export const DEFAULT_SUSPEND_TIMEOUT_MS = 5000;
