import type { Release } from '../../release/release-model.js';

/**
 * What a node is given to boot or upgrade from: the release's metadata and its
 * files in memory (relative `/`-separated path → bytes). The release layer
 * produces both (readReleaseFiles + releaseFromFiles); the node depends only
 * on this shape, never on how a release was read.
 */
export interface ReleaseImage {
  release: Release;
  files: ReadonlyMap<string, Uint8Array>;
}
