import { isBuiltin } from 'node:module';
import { error, warning, type Diagnostic } from '../../diagnostics/diagnostic.js';
import type { Release, ReleaseModule } from '../../release/release-model.js';
import { releaseFileDisplay, type RuntimeDriver } from '../runtime-driver.js';
import { findModuleCalls } from './module-requires.js';
import { describeInstalled, packageNameOf } from './package-base.js';
import { compileModuleSource, moduleFilename, moduleSourceText } from './module-source.js';

/**
 * The Node.js runtime's static checks: each module file is compiled exactly
 * as a node compiles it (module-source.ts), and its `require` / `import()`
 * calls are checked against what the node allows. Nothing of the module runs.
 */
export const nodeDriver: RuntimeDriver = {
  runtime: 'node',
  async checkModules(release: Release, readFile: (path: string) => Promise<Uint8Array>): Promise<Diagnostic[]> {
    const out: Diagnostic[] = [];
    for (const module of release.modules) {
      let bytes: Uint8Array;
      try {
        bytes = await readFile(module.file);
      } catch (e) {
        out.push(error('module-unreadable', `module ${module.name}: cannot read ${module.file}: ${e instanceof Error ? e.message : String(e)}`, { file: release.manifestFile, line: module.line }, 'fix the file path in release.yaml'));
        continue;
      }
      out.push(...checkModule(release, module, moduleSourceText(bytes)));
    }
    return out;
  },
  // Node resolves packages from the release directory upwards: the project's node_modules.
  async describeBase(release: Release, releaseDir: string) {
    return (release.packages ?? []).map((name) => describeInstalled(name, releaseDir));
  },
};

function checkModule(release: Release, module: ReleaseModule, source: string): Diagnostic[] {
  const file = releaseFileDisplay(release, module.file);
  const compiled = compileModuleSource(source, moduleFilename(release.name, release.version, module.file));
  if (!compiled.ok) {
    const { message, line, column } = compiled.problem;
    return [error('module-compile-error', `module ${module.name} does not compile: ${message}`, { file, ...(line === undefined ? {} : { line }), ...(column === undefined ? {} : { column }) }, compileHint(module.file, message))];
  }
  const out: Diagnostic[] = [];
  for (const call of findModuleCalls(source)) {
    const where = { file, line: call.line, column: call.column };
    if (call.kind === 'timer') {
      out.push(
        warning(
          'module-plain-timer',
          `module ${module.name} calls ${call.id}(): a plain timer keeps running this version's code after an upgrade, is not paused, held or cleared by the node, and can keep a stopped node from exiting`,
          where,
          'use relup.setInterval(ms, "module", "function", ...args), which calls the current code and belongs to the node (docs/runtime-node.md)',
        ),
      );
    } else if (call.kind === 'import') {
      out.push(error('module-dynamic-import', `module ${module.name} calls import(): module code is compiled with vm.compileFunction and has no dynamic import`, where, 'use require("node:…") for built-ins, and relup.module(name) for code of the release'));
    } else if (call.kind === 'listener' || call.kind === 'server') {
      out.push(
        warning(
          call.kind === 'server' ? 'module-raw-server' : 'module-raw-listener',
          call.kind === 'server'
            ? `module ${module.name} calls ${call.id}(): a server of its own calls this version's handlers forever (the old code keeps answering after an upgrade), and the node cannot hold, close or hand it over`
            : `module ${module.name} calls ${call.id}(): a listener on an object that outlives the version keeps this version's code alive and running after an upgrade`,
          where,
          call.kind === 'server'
            ? 'use relup.listen (HTTP, WebSocket) or relup.listenTcp, whose handlers are looked up by name in the current code (docs/runtime-node.md)'
            : 'register the listener once from start() with a body that only calls relup.module("name").fn(...), so each event reaches the current code',
        ),
      );
    } else if (call.id === 'module' || call.id === 'node:module') {
      out.push(error('module-require-denied', `module ${module.name} requires ${JSON.stringify(call.id)}: its createRequire would load code past the release's rules, so the node refuses it`, where, 'declare the npm package under packages: in release.yaml and require it by name'));
    } else if (call.id !== undefined && !isBuiltin(call.id) && !(release.packages ?? []).includes(packageNameOf(call.id) ?? '')) {
      const when = call.topLevel ? 'at its top level, so it cannot load' : 'which throws require-denied when that code runs';
      out.push(
        error(
          'module-require-denied',
          `module ${module.name} requires ${JSON.stringify(call.id)} ${when}: only Node.js built-in modules and the packages release.yaml declares can be required`,
          where,
          packageNameOf(call.id) === undefined
            ? 'make that code a module of the release and call it through relup.module(name)'
            : `declare it in release.yaml (packages: [${packageNameOf(call.id)}]): npm packages are the node's base, loaded once and never hot-swapped (docs/runtime-node.md)`,
        ),
      );
    }
  }
  return out;
}

function compileHint(file: string, message: string): string {
  if (/\.(ts|mts|cts|tsx)$/.test(file)) return 'module files are plain JavaScript: compile the TypeScript first and put the .js file in the release';
  if (/import statement|'export'|import\.meta/.test(message)) return 'module files are CommonJS-style function bodies, not ES modules: use require("node:…"), relup.module(name) and exports.name = …';
  return 'fix the module file, then run relup check again';
}
