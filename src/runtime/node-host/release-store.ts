import { lstat, mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { error, hasErrors, type Checked, type Diagnostic } from '../../diagnostics/diagnostic.js';
import { checkSignature } from '../../release/bundle-signature.js';
import { bundleFileName } from '../../release/pack-release.js';
import { readBundleBytes, readReleaseFiles, type ReleaseFiles } from '../../release/release-files.js';
import { verifyFiles } from '../../release/verify-release.js';
import type { Release } from '../../release/release-model.js';
import type { ReleaseImage } from '../node/release-image.js';
import { ATOMIC_TEMP_FILE, prepareFileAtomic, writeFileAtomic, type PreparedFile } from '../../fs/write-file-atomic.js';
import { checkFileTrust } from '../../fs/check-path-trust.js';
import { NodeError } from '../../errors/errors.js';

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
  async receive(bytes: Uint8Array, expectedReleaseHash?: string): Promise<{ image: ReleaseImage | undefined; diagnostics: Diagnostic[]; bytes: Uint8Array }> {
    // The script's release hash is checked on the files before anything in them is parsed (issue 9 item 10).
    return { ...this.verify(await readBundleBytes(bytes, { displayPath: 'uploaded bundle', ...(expectedReleaseHash === undefined ? {} : { expectedReleaseHash }) }), 'uploaded bundle'), bytes };
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

  /**
   * The installed release `version`, checked before anything of it is used:
   * the bundle file is a regular file only we (or root) can write, it
   * verifies against its manifest (and signature), and its release hash is
   * `expectedHash`, the one the history recorded when it was installed. A
   * bundle re-manifested by someone else hashes differently and is refused.
   * Undefined when there is no such bundle file.
   */
  async installed(name: string, version: string, expectedHash: string | undefined): Promise<ReleaseImage | undefined> {
    const path = this.pathOf({ name, version });
    const exists = await lstat(path).then(() => true, () => false);
    if (!exists) return undefined;
    await checkFileTrust(path, 'the installed bundle');
    const loaded = await this.load(path);
    if (loaded.image === undefined) {
      const why = loaded.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code}: ${d.message}`).join('; ');
      throw new BundleTamperedError(`the installed bundle ${path} does not verify (${why})`, path);
    }
    if (expectedHash !== undefined && loaded.image.release.hash !== expectedHash) {
      throw new BundleTamperedError(`the installed bundle ${path} has release hash ${loaded.image.release.hash.slice(0, 12)}, but the history recorded ${expectedHash.slice(0, 12)} when it was installed: it was replaced`, path);
    }
    return loaded.image;
  }

  /** The versions of `name` with a bundle file here (recorded in the history or not). */
  async bundleVersions(name: string): Promise<string[]> {
    const prefix = `${name}-`;
    return (await readdir(this.dir).catch(() => [] as string[]))
      .filter((n) => n.startsWith(prefix) && n.endsWith('.tar.gz'))
      .map((n) => n.slice(prefix.length, -'.tar.gz'.length));
  }

  /** Keep the bundle of a release the node now has, written atomically. */
  async install(release: Release, bytes: Uint8Array, write: (path: string, bytes: Uint8Array) => Promise<void> = defaultWrite): Promise<void> {
    await write(this.pathOf(release), bytes);
  }

  /**
   * The bundle written and synced under a temp name, to be put in place by
   * `commit()` (a rename) or dropped by `discard()`: an upgrade writes it
   * before its point of no return, so the commit step only renames it.
   */
  async prepareInstall(release: Release, bytes: Uint8Array): Promise<PreparedFile> {
    return prepareFileAtomic(this.pathOf(release), bytes, { mode: 0o600 });
  }
}

const defaultWrite = (path: string, bytes: Uint8Array): Promise<void> => writeFileAtomic(path, bytes, { mode: 0o600 });

/** An installed bundle that is not what the node installed: refused before any of it runs. */
export class BundleTamperedError extends NodeError {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super('bundle-tampered', message, `someone or something changed ${path}; check who can write to the state directory, then restore the bundle (relup release pack <version> gives the same release hash) or remove it`);
  }
}
