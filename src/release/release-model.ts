/**
 * What the rest of relup knows about a release: runtime-neutral metadata.
 * The runtime kind is data; nothing here knows how a module is executed.
 */
export const RUNTIMES = ['node', 'erlang', 'lua'] as const;
export type RuntimeKind = (typeof RUNTIMES)[number];

export interface ReleaseModule {
  name: string;
  /** Path of the module's file inside the release, `/`-separated. */
  file: string;
  /** sha256 (hex) of the module file: a module's change is its content hash. */
  hash: string;
  /** Modules this one calls; the default `deps` of its appup instructions. Sorted. */
  deps: string[];
  /** Functions the module exports, when declared; lets the planner check migration and apply functions. */
  exports: string[] | undefined;
  /** 1-based line of the module's entry in release.yaml, for diagnostics. */
  line: number;
}

export interface ReleaseProcess {
  name: string;
  module: string;
  /** Argument handed to the process's init function. */
  args: unknown;
  /** How the runtime restarts the process when it crashes (OTP child restart type); undefined: a handler error is only its caller's. */
  restart?: RestartPolicy;
  line: number;
}

export interface BasePackage {
  name: string;
  version: string;
  /** sha256 over the package's installed files (and those of the packages it depends on). */
  hash: string;
}

export interface RestartPolicy {
  type: 'permanent' | 'transient' | 'temporary';
  /** More than `maxRestarts` restarts within `periodMs` and the process stays down (OTP's intensity and period). */
  maxRestarts: number;
  periodMs: number;
}

/** OTP's supervisor defaults are 1 restart in 5 s; a little more forgiving here, since one process is one child. */
export const DEFAULT_RESTART_INTENSITY = { maxRestarts: 3, periodMs: 5000 } as const;

export interface Release {
  name: string;
  version: string;
  runtime: RuntimeKind;
  /** Sorted by name. */
  modules: ReleaseModule[];
  /** Sorted by name. */
  processes: ReleaseProcess[];
  /**
   * The packages the release's code may load from the node's base (npm
   * packages for Node.js), sorted; absent or empty when it declares none. The
   * base is loaded once and never hot-swapped: the planner refuses a change.
   */
  packages?: string[];
  /** 1-based line of `packages` in release.yaml, for diagnostics. */
  packagesLine?: number;
  /** What the declared packages were when the release was recorded (name, version, hash of the installed tree), when known. */
  base?: BasePackage[];
  /** Free-form runtime settings (for Node.js: the entry module), passed through untouched. */
  start: Record<string, unknown>;
  /** sha256 over the sorted list of (path, file hash) of every file: two releases are the same iff this matches. */
  hash: string;
  /** Where it was read from, for messages: the directory or the bundle path. */
  origin: string;
  /** Path of release.yaml as the user should see it (inside a bundle: `bundle.tar.gz:release.yaml`). */
  manifestFile: string;
}
