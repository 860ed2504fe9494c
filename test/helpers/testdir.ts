import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach } from 'vitest';

/** A tree of files: path → content (string or bytes). */
export type Tree = Record<string, string | Uint8Array>;

const created: string[] = [];

afterEach(async () => {
  await Promise.all(created.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/** Write `tree` into a fresh temporary directory, removed after the current test. */
export async function testdir(tree: Tree = {}): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'relup-test-'));
  created.push(root);
  await writeTree(root, tree);
  return root;
}

export async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [path, content] of Object.entries(tree)) {
    const full = join(root, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content);
  }
}
