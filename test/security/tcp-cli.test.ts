import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/repo-paths.js';
import { demoCopy, runCli } from '../helpers/run-cli.js';
import { until } from '../runtime/helpers/demo-node.js';

describe('relup node start --listen (CLI)', { timeout: 30_000 }, () => {
  it('serves status over TCP to a configured target whose secret comes from a file', async () => {
    const dir = await demoCopy();
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    await writeFile(join(dir, 'run', 'secret'), 'a-long-random-shared-secret-0123456789\n', { mode: 0o600 });
    const node = execa('node', [CLI, 'node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--state-dir', 'state', '--port', '0', '--listen', '0', '--secret-file', 'run/secret'], { cwd: dir, reject: false, all: true, env: { NO_COLOR: '1' } });
    let out = '';
    node.all?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await until(() => /control over TCP: 127\.0\.0\.1:\d+/.test(out), 10_000);
      const port = Number(/control over TCP: 127\.0\.0\.1:(\d+)/.exec(out)![1]);
      await writeFile(join(dir, 'relup.config.yaml'), `defaultTarget: remote\ntargets:\n  remote:\n    host: 127.0.0.1\n    port: ${port}\n    secretFile: run/secret\n`);
      const s = await runCli(['status', '--json'], dir);
      expect(s.exitCode, s.stderr).toBe(0);
      expect(JSON.parse(s.stdout).version).toBe('1.2.2');
      const none = await runCli(['status', '--target', `127.0.0.1:${port}`], dir);
      expect(none.exitCode).toBe(1);
      expect(none.stderr).toContain('requires authentication');
    } finally {
      node.kill('SIGTERM');
      await node;
    }
  });

  it('refuses --listen without a secret file, and a secret file others can read', async () => {
    const dir = await demoCopy();
    await mkdir(join(dir, 'run'), { mode: 0o700 });
    const noSecret = await runCli(['node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--listen', '7070'], dir);
    expect(noSecret.exitCode).toBe(2);
    expect(noSecret.stderr).toContain('--secret-file');
    await writeFile(join(dir, 'run', 'secret'), 'a-long-random-shared-secret-0123456789');
    await chmod(join(dir, 'run', 'secret'), 0o644);
    const open = await runCli(['node', 'start', '--release', 'releases/1.2.2', '--socket', 'run/n.sock', '--listen', '7070', '--secret-file', 'run/secret'], dir);
    expect(open.exitCode).toBe(2);
    expect(open.stderr).toContain('chmod 600');
  });
});
