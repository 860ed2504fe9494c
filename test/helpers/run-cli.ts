import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { CLI, DEMO_APPUPS, DEMO_RELEASES } from './repo-paths.js';
import { testdir } from './testdir.js';

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI as a real subprocess, without colour and without stdin. */
export async function runCli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  const r = await execa('node', [CLI, ...args], { cwd, reject: false, stdin: 'ignore', env: { NO_COLOR: '1', ...env } });
  return { exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A scratch copy of the demo project (releases/ and appups/) that a test may change. */
export async function demoCopy(): Promise<string> {
  const dir = await testdir();
  await cp(DEMO_RELEASES, join(dir, 'releases'), { recursive: true, filter: (src) => !src.endsWith('.tar.gz') });
  await cp(DEMO_APPUPS, join(dir, 'appups'), { recursive: true });
  return dir;
}
