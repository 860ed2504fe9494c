import { z } from 'zod';
import { error, type Diagnostic } from '../diagnostics/diagnostic.js';
import { formatPath } from '../yaml/yaml-source.js';
import { comparePaths } from './release-path.js';
import { BUNDLE_OWN_FILES, releaseHashOf, sha256Hex } from './release-hash.js';
import { RUNTIMES, type Release } from './release-model.js';
import { releasePath } from './release-schema.js';

export const BUNDLE_FORMAT = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lower-case hex digits');

export const bundleFileSchema = z.strictObject({
  path: releasePath,
  size: z.number().int().nonnegative(),
  sha256,
});

/** `manifest.json` at the root of a bundle: a wire format, validated on every read. */
export const bundleManifestSchema = z
  .strictObject({
    format: z.literal(BUNDLE_FORMAT),
    name: z.string().min(1),
    version: z.string().min(1),
    runtime: z.enum(RUNTIMES),
    releaseHash: sha256,
    // The base the release was packed against (npm packages for Node.js): recorded for the planner and the node to compare.
    base: z.array(z.strictObject({ name: z.string().min(1), version: z.string().min(1), hash: sha256 })).optional(),
    files: z.array(bundleFileSchema),
  })
  .superRefine((m, ctx) => {
    m.files.forEach((f, i) => {
      if (BUNDLE_OWN_FILES.has(f.path)) {
        ctx.addIssue({ code: 'custom', path: ['files', i, 'path'], message: `${f.path} describes the bundle and must not be listed` });
      }
      const prev = m.files[i - 1];
      if (prev !== undefined && comparePaths(prev.path, f.path) >= 0) {
        ctx.addIssue({ code: 'custom', path: ['files', i, 'path'], message: 'files must be sorted by path, each path once' });
      }
    });
  });

export type BundleManifest = z.infer<typeof bundleManifestSchema>;
export type BundleFile = z.infer<typeof bundleFileSchema>;

/** The manifest `relup release pack` writes for `release` made of `files`. */
export function buildManifest(release: Release, files: ReadonlyMap<string, Uint8Array>): BundleManifest {
  const list: BundleFile[] = [...files]
    .filter(([path]) => !BUNDLE_OWN_FILES.has(path))
    .sort(([a], [b]) => comparePaths(a, b))
    .map(([path, bytes]) => ({ path, size: bytes.length, sha256: sha256Hex(bytes) }));
  return {
    format: BUNDLE_FORMAT,
    name: release.name,
    version: release.version,
    runtime: release.runtime,
    releaseHash: releaseHashOf(list),
    ...(release.base === undefined || release.base.length === 0 ? {} : { base: release.base.map((b) => ({ name: b.name, version: b.version, hash: b.hash })) }),
    files: list,
  };
}

/** Stable bytes: keys in schema order, two-space indent, final newline. */
export function serializeManifest(m: BundleManifest): Buffer {
  const ordered = {
    format: m.format,
    name: m.name,
    version: m.version,
    runtime: m.runtime,
    releaseHash: m.releaseHash,
    ...(m.base === undefined ? {} : { base: m.base.map((b) => ({ name: b.name, version: b.version, hash: b.hash })) }),
    files: m.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })),
  };
  return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`, 'utf8');
}

/** Parse and validate manifest.json; `file` is how it is shown in messages. */
export function parseManifest(bytes: Uint8Array, file: string): { value: BundleManifest | undefined; diagnostics: Diagnostic[] } {
  const hint = 'the bundle was not made by `relup release pack` or was edited; rebuild it';
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    return { value: undefined, diagnostics: [error('bundle-manifest-invalid', `manifest.json is not valid JSON: ${(e as Error).message}`, { file }, hint)] };
  }
  const result = bundleManifestSchema.safeParse(json);
  if (result.success) return { value: result.data, diagnostics: [] };
  return {
    value: undefined,
    diagnostics: result.error.issues.map((issue) =>
      error('bundle-manifest-invalid', `manifest.json ${formatPath(issue.path)}: ${issue.message}`, { file }, hint),
    ),
  };
}

export interface ManifestCheck {
  diagnostics: Diagnostic[];
  /** Files whose size and sha256 were compared with the manifest. */
  filesChecked: number;
}

/**
 * Compare every file with the manifest, reporting each difference on its own:
 * changed (`bundle-hash-mismatch`), listed but absent (`bundle-file-missing`),
 * present but unlisted (`bundle-file-extra`). The release hash is checked last,
 * when every file matched, since any file difference already changes it.
 */
export function checkAgainstManifest(files: ReadonlyMap<string, Uint8Array>, manifest: BundleManifest, origin: string, sep: ':' | '/'): ManifestCheck {
  const at = (path: string) => ({ file: `${origin}${sep}${path}` });
  const rebuild = 'the bundle was changed after it was packed; rebuild it with `relup release pack` and do not deploy this copy';
  const diagnostics: Diagnostic[] = [];
  const listed = new Set<string>();
  let filesChecked = 0;
  for (const entry of manifest.files) {
    listed.add(entry.path);
    const bytes = files.get(entry.path);
    if (bytes === undefined) {
      diagnostics.push(error('bundle-file-missing', `${entry.path} is listed in manifest.json but not in the bundle`, at(entry.path), rebuild));
      continue;
    }
    filesChecked += 1;
    const actual = sha256Hex(bytes);
    if (actual !== entry.sha256 || bytes.length !== entry.size) {
      diagnostics.push(
        error(
          'bundle-hash-mismatch',
          `${entry.path} does not match manifest.json: sha256 ${actual} (${bytes.length} bytes), expected ${entry.sha256} (${entry.size} bytes)`,
          at(entry.path),
          rebuild,
        ),
      );
    }
  }
  for (const path of files.keys()) {
    if (!listed.has(path) && !BUNDLE_OWN_FILES.has(path)) {
      diagnostics.push(error('bundle-file-extra', `${path} is in the bundle but not listed in manifest.json`, at(path), rebuild));
    }
  }
  if (diagnostics.length === 0) {
    const computed = releaseHashOf(manifest.files);
    if (computed !== manifest.releaseHash) {
      diagnostics.push(
        error('bundle-release-hash-mismatch', `manifest.json says releaseHash ${manifest.releaseHash}, but its files hash to ${computed}`, at('manifest.json'), rebuild),
      );
    }
  }
  return { diagnostics, filesChecked };
}
