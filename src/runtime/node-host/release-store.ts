import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { error, hasErrors, type Checked, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { checkSignature } from '../../release/bundle-signature.js';
import { bundleFileName } from '../../release/pack-release.js';
import { readBundleBytes, readReleaseFiles, type ReleaseFiles } from '../../release/release-files.js';
import { verifyFiles } from '../../release/verify-release.js';
import type { Release } from '../../release/release-model.js';
import type { ReleaseImage } from '../node/release-image.js';
import { ATOMIC_TEMP_FILE, writeFileAtomic } from '../../fs/write-file-atomic.js';

/**
 * The bundles a node has installed, under `<stateDir>/releases/`: every
 * release it ran, so a restart can boot the permanent one and a rollback has
 * the code it returns to. A bundle enters only after it verified.
 */
export class ReleaseStore {
  readonly dir: string;

  /** When set, every release must be a bundle signed by this key; checked before its content is used. */
  private readonly publicKey: KeyObject | undefined;

  constructor(stateDir: string, publicKey?: KeyObject) {
    this.dir = join(stateDir, 'releases');
    this.publicKey = publicKey;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Temp files of an install cut short by a crash are never trusted.
    for (const name of await readdir(this.dir)) if (ATOMIC_TEMP_FILE.test(name)) await unlink(join(this.dir, name)).catch(() => undefined);
  }

  /** Read and verify a bundle or release directory from disk. */
  async load(path: string, displayPath = path): Promise<{ image: ReleaseImage | undefined; diagnostics: Diagnostic[] }> {
    return this.verify(await readReleaseFiles(path, { displayPath }), displayPath);
  }

  /** Verify uploaded bundle bytes in memory, without installing them: nothing is written before the checks pass. */
  async receive(bytes: Uint8Array): Promise<{ image: ReleaseImage | undefined; diagnostics: Diagnostic[]; bytes: Uint8Array }> {
    return { ...this.verify(await readBundleBytes(bytes, { displayPath: 'uploaded bundle' }), 'uploaded bundle'), bytes };
  }

  private verify(read: Checked<ReleaseFiles>, displayPath: string): { image: ReleaseImage | undefined; diagnostics: Diagnostic[] } {
    if (read.value === undefined) return { image: undefined, diagnostics: read.diagnostics };
    if (this.publicKey !== undefined) {
      // The signature is checked first: nothing of an unsigned or tampered bundle is trusted, parsed further or installed.
      if (read.value.kind !== 'bundle') {
        return { image: undefined, diagnostics: [error('release-unsigned-directory', `${displayPath} is a directory, and this node only accepts signed bundles`, { file: displayPath }, 'pack and sign it: relup release pack, then relup release sign')] };
      }
      const signature = checkSignature(read.value.files, this.publicKey, displayPath);
      if (signature.length > 0) return { image: undefined, diagnostics: signature };
    }
    const report = verifyFiles(read.value, displayPath);
    const diagnostics = [...read.diagnostics, ...report.diagnostics];
    if (hasErrors(diagnostics) || report.release === undefined) return { image: undefined, diagnostics };
    return { image: { release: report.release, files: read.value.files }, diagnostics };
  }

  pathOf(release: Pick<Release, 'name' | 'version'>): string {
    return join(this.dir, bundleFileName(release));
  }

  /** The installed release `version`, if any. */
  async installed(name: string, version: string): Promise<ReleaseImage | undefined> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    if (!names.includes(bundleFileName({ name, version }))) return undefined;
    return (await this.load(this.pathOf({ name, version }))).image;
  }

  /** Keep the bundle of a release the node now has, written atomically. */
  async install(release: Release, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.pathOf(release), bytes, { mode: 0o600 });
  }
}
