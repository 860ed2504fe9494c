import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { testdir } from '../../helpers/testdir.js';

const APP = new URL('../../conformance/app/', import.meta.url).pathname;

/** A scratch project with the conformance app's Erlang releases (1.0.0 … 1.3.0) and the shared appups. */
export async function confProject(): Promise<string> {
  const dir = await testdir();
  await cp(join(APP, 'erlang'), join(dir, 'releases'), { recursive: true });
  await cp(join(APP, 'appups'), join(dir, 'appups'), { recursive: true });
  return dir;
}
