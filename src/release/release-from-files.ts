import semver from 'semver';
import { error, hasErrors, warning, type Checked, type Diagnostic } from '../diagnostics/diagnostic.js';
import { suggestion } from '../diagnostics/did-you-mean.js';
import { YamlSource, validateYaml } from '../yaml/yaml-source.js';
import { comparePaths } from './release-path.js';
import { BUNDLE_BUILD_DIR, BUNDLE_MANIFEST_FILE, isBuildArtifact, releaseHash, sha256Hex } from './release-hash.js';
import { parseManifest } from './bundle-manifest.js';
import type { ReleaseFiles } from './release-files.js';
import { DEFAULT_RESTART_INTENSITY, type BasePackage, type Release, type ReleaseModule, type ReleaseProcess } from './release-model.js';
import {
  RELEASE_MANIFEST_FILE,
  releaseManifestSchema,
  releaseModuleSchema,
  releaseProcessSchema,
  type ReleaseManifest,
} from './release-schema.js';

const TOP_KEYS = Object.keys(releaseManifestSchema.shape);
const MODULE_KEYS = Object.keys(releaseModuleSchema.shape);
const PROCESS_KEYS = Object.keys(releaseProcessSchema.shape);

/** The keys release.yaml accepts at `path`, for "did you mean" on unknown keys. */
export function releaseKeysAt(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return TOP_KEYS;
  if (path.length === 2 && path[0] === 'modules') return MODULE_KEYS;
  if (path.length === 2 && path[0] === 'processes') return PROCESS_KEYS;
  return [];
}

/** Where release.yaml of a release read from `displayPath` is shown in messages. */
export function manifestFileOf(tree: Pick<ReleaseFiles, 'kind'>, displayPath: string): string {
  const base = tree.kind === 'dir' ? displayPath.replace(/\/+$/, '') : displayPath;
  return tree.kind === 'dir' ? `${base}/${RELEASE_MANIFEST_FILE}` : `${base}:${RELEASE_MANIFEST_FILE}`;
}

/**
 * Parse release.yaml from an in-memory file tree and check it against the
 * files: parse → validate shape → rules. Never throws for bad input.
 */
export function releaseFromFiles(tree: ReleaseFiles, displayPath: string = tree.origin): Checked<Release> {
  const manifestFile = manifestFileOf(tree, displayPath);
  const bytes = tree.files.get(RELEASE_MANIFEST_FILE);
  if (bytes === undefined) {
    return fail(error('release-yaml-missing', `${displayPath} has no ${RELEASE_MANIFEST_FILE}`, { file: manifestFile }, `a release is a directory with a ${RELEASE_MANIFEST_FILE} at its root; see docs/release.md`));
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail(error('release-invalid', `${RELEASE_MANIFEST_FILE} is not valid UTF-8`, { file: manifestFile }, 'save it as UTF-8'));
  }
  const parsed = YamlSource.parse(text, manifestFile);
  if (hasErrors(parsed.diagnostics)) return { value: undefined, diagnostics: parsed.diagnostics };
  const source = parsed.source;
  const validated = validateYaml(source, releaseManifestSchema, 'release', releaseKeysAt);
  if (validated.value === undefined) return { value: undefined, diagnostics: [...parsed.diagnostics, ...validated.diagnostics] };

  const manifest: ReleaseManifest = validated.value;
  const diagnostics: Diagnostic[] = [...parsed.diagnostics, ...checkRules(manifest, tree, source)];
  if (hasErrors(diagnostics)) return { value: undefined, diagnostics };

  const modules: ReleaseModule[] = Object.entries(manifest.modules).map(([name, m]) => ({
    name,
    file: m.file,
    hash: sha256Hex(tree.files.get(m.file) ?? new Uint8Array()),
    deps: [...new Set(m.deps ?? [])].sort(comparePaths),
    exports: m.exports === undefined ? undefined : [...m.exports],
    line: source.locate(['modules', name], true).line ?? 1,
  }));
  const processes: ReleaseProcess[] = Object.entries(manifest.processes ?? {}).map(([name, p]) => ({
    name,
    module: p.module,
    args: p.args,
    ...(p.restart === undefined ? {} : { restart: { type: p.restart, ...(p.intensity ?? DEFAULT_RESTART_INTENSITY) } }),
    line: source.locate(['processes', name], true).line ?? 1,
  }));
  const release: Release = {
    name: manifest.name,
    version: manifest.version,
    runtime: manifest.runtime,
    modules: modules.sort((a, b) => comparePaths(a.name, b.name)),
    processes: processes.sort((a, b) => comparePaths(a.name, b.name)),
    ...(manifest.packages === undefined ? {} : { packages: [...new Set(manifest.packages)].sort(comparePaths), packagesLine: source.locate(['packages'], true).line ?? 1 }),
    ...recordedBase(tree),
    start: manifest.start ?? {},
    hash: releaseHash(tree.files),
    origin: displayPath,
    manifestFile,
  };
  return { value: release, diagnostics };
}

function checkRules(manifest: ReleaseManifest, tree: ReleaseFiles, source: YamlSource): Diagnostic[] {
  const out: Diagnostic[] = [];
  const { version } = manifest;
  if (semver.valid(version) !== version) {
    const bare = version.replace(/^[v=]\s*/i, '');
    const hint = semver.valid(bare) === bare
      ? `write ${JSON.stringify(bare)}, without the leading "${version.slice(0, version.length - bare.length)}"`
      : 'use a semantic version MAJOR.MINOR.PATCH, e.g. 1.2.3';
    out.push(error('release-version-invalid', `version ${JSON.stringify(version)} is not a valid semantic version`, source.locate(['version']), hint));
  }

  // A Map from here on: a name is found only if it was declared, never through Object.prototype.
  const modules = new Map(Object.entries(manifest.modules));
  const names = [...modules.keys()];
  const fileOwner = new Map<string, string>();
  for (const [name, m] of modules) {
    if (isBuildArtifact(m.file)) {
      out.push(error('release-module-file-reserved', `module ${name}: ${JSON.stringify(m.file)} is under ${BUNDLE_BUILD_DIR}/, where bundles keep build artifacts (outside the release hash)`, source.locate(['modules', name, 'file']), `move the file out of ${BUNDLE_BUILD_DIR}/`));
      continue;
    }
    if (!tree.files.has(m.file)) {
      out.push(
        error(
          'release-module-file-missing',
          `module ${name}: file ${JSON.stringify(m.file)} is not in the release${suggestion(m.file, tree.files.keys())}`,
          source.locate(['modules', name, 'file']),
          'add the file to the release directory or fix the path (relative to release.yaml)',
        ),
      );
    }
    const owner = fileOwner.get(m.file);
    if (owner === undefined) {
      fileOwner.set(m.file, name);
    } else {
      out.push(
        warning(
          'release-module-file-shared',
          `modules ${owner} and ${name} share the file ${JSON.stringify(m.file)}`,
          source.locate(['modules', name, 'file']),
          'give each module its own file: a module is swapped as a unit, by its content hash',
        ),
      );
    }
    const seen = new Set<string>();
    (m.deps ?? []).forEach((dep, i) => {
      const where = source.locate(['modules', name, 'deps', i]);
      if (dep === name) {
        out.push(error('release-dep-self', `module ${name} lists itself in deps`, where, `remove ${name} from its own deps`));
      } else if (!modules.has(dep)) {
        out.push(
          error(
            'release-dep-unknown',
            `module ${name} depends on ${JSON.stringify(dep)}, which is not a module of this release${suggestion(dep, names)}`,
            where,
            `declare ${dep} under modules, or remove it from deps; modules: ${listSome(names)}`,
          ),
        );
      } else if (seen.has(dep)) {
        out.push(warning('release-dep-duplicate', `module ${name} lists ${dep} twice in deps`, where, 'remove the repeated entry'));
      }
      seen.add(dep);
    });
  }
  for (const [name, p] of Object.entries(manifest.processes ?? {})) {
    if (!modules.has(p.module)) {
      out.push(
        error(
          'release-process-module-unknown',
          `process ${name} runs module ${JSON.stringify(p.module)}, which is not a module of this release${suggestion(p.module, names)}`,
          source.locate(['processes', name, 'module']),
          `declare ${p.module} under modules, or point the process at one of: ${listSome(names)}`,
        ),
      );
    }
  }
  return out;
}

function fail(d: Diagnostic): Checked<Release> {
  return { value: undefined, diagnostics: [d] };
}

function listSome(names: readonly string[]): string {
  return names.length <= 20 ? names.join(', ') : `${names.slice(0, 20).join(', ')}, … (${names.length} in all)`;
}

/** A bundle's manifest.json records the base it was packed against (verify reports a manifest that does not parse). */
function recordedBase(tree: ReleaseFiles): { base?: BasePackage[] } {
  const bytes = tree.kind === 'bundle' ? tree.files.get(BUNDLE_MANIFEST_FILE) : undefined;
  if (bytes === undefined) return {};
  const base = parseManifest(bytes, BUNDLE_MANIFEST_FILE).value?.base;
  return base === undefined ? {} : { base };
}
