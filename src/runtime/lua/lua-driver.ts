import { execa } from 'execa';
import { error, warning, type Diagnostic } from '../../diagnostics/diagnostic.js';
import type { Release, ReleaseModule } from '../../release/release-model.js';
import { releaseFileDisplay, type RuntimeDriver } from '../runtime-driver.js';

/**
 * The Lua runtime's static checks (relup check, release pack): every module
 * file is compiled by a Lua compiler, so a syntax error is a located
 * diagnostic before anything ships; nothing of the module runs. Processes
 * are the agent's (docs/runtime-lua.md, "Processes"); it does not restart a
 * crashed one, so a restart policy is refused rather than ignored.
 */
export const luaDriver: RuntimeDriver = {
  runtime: 'lua',
  async checkModules(release: Release, readFile: (path: string) => Promise<Uint8Array>): Promise<Diagnostic[]> {
    const out: Diagnostic[] = [];
    for (const p of release.processes) {
      if (p.restart !== undefined) {
        out.push(error('lua-process-restart', `process ${p.name}: a Lua node does not restart processes, so its restart policy cannot be honoured`, { file: release.manifestFile, line: p.line }, 'remove `restart` (and `intensity`) from the process in release.yaml'));
      }
    }
    const compiler = await findCompiler();
    if (compiler === undefined) {
      out.push(
        warning('lua-compiler-missing', `the modules of ${release.name} ${release.version} were not compiled: no Lua compiler found (luac5.4 or lua5.4)`, { file: release.manifestFile }, 'apt-get install -y lua5.4, or set LUAC=<luac> or LUA=<lua>'),
      );
      return out;
    }
    for (const module of release.modules) {
      let bytes: Uint8Array;
      try {
        bytes = await readFile(module.file);
      } catch (e) {
        out.push(error('module-unreadable', `module ${module.name}: cannot read ${module.file}: ${e instanceof Error ? e.message : String(e)}`, { file: release.manifestFile, line: module.line }, 'fix the file path in release.yaml'));
        continue;
      }
      const problem = await compiler(Buffer.from(bytes));
      if (problem !== undefined) out.push(compileDiagnostic(release, module, problem));
    }
    return out;
  },
};

interface CompileProblem {
  line: number | undefined;
  message: string;
}

type Compiler = (source: Buffer) => Promise<CompileProblem | undefined>;

let cached: Promise<Compiler | undefined> | undefined;

/** luac -p reads and compiles without running: `$LUAC`, luac5.4, luac; else `$LUA` or lua5.4 with load(). */
function findCompiler(): Promise<Compiler | undefined> {
  cached ??= (async () => {
    for (const luac of [process.env['LUAC'], 'luac5.4', 'luac']) {
      if (luac === undefined || luac === '') continue;
      if ((await execa(luac, ['-v'], { reject: false })).exitCode === 0) {
        return async (source: Buffer) => parseProblem((await execa(luac, ['-p', '-'], { input: source, reject: false })).stderr, 'stdin');
      }
    }
    for (const lua of [process.env['LUA'], 'lua5.4']) {
      if (lua === undefined || lua === '') continue;
      const probe = await execa(lua, ['-e', 'print(1)'], { reject: false, timeout: 10_000 });
      if (probe.exitCode !== 0) continue;
      return async (source: Buffer) => {
        const r = await execa(lua, ['-e', LOAD_STDIN], { input: source, reject: false, timeout: 10_000 });
        return r.exitCode === 0 ? undefined : parseProblem(r.stderr || r.stdout, 'module');
      };
    }
    return undefined;
  })();
  return cached;
}

const LOAD_STDIN = 'local f, e = load(io.read("a"), "=module", "t") if not f then io.stderr:write(e) os.exit(1) end';

function parseProblem(text: string, chunk: string): CompileProblem | undefined {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) return undefined;
  const m = new RegExp(`${chunk}:(\\d+):\\s*(.*)$`).exec(line);
  if (m === null) return { line: undefined, message: line.replace(/^[^:]*luac[^:]*:\s*/, '') };
  return { line: Number(m[1]), message: m[2]! };
}

function compileDiagnostic(release: Release, module: ReleaseModule, problem: CompileProblem): Diagnostic {
  return error(
    'module-compile-error',
    `module ${module.name} does not compile: ${problem.message}`,
    { file: releaseFileDisplay(release, module.file), ...(problem.line === undefined ? {} : { line: problem.line }) },
    'fix the module file, then run relup check again',
  );
}
