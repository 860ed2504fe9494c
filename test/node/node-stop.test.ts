import { lstat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startNodeProcess } from '../helpers/node-process.js';
import { testdir } from '../helpers/testdir.js';

/**
 * Issue 8.2: SIGTERM/SIGINT must end `relup node start` with exit 0 and the
 * socket removed, whatever module code left behind: a plain setInterval that
 * keeps the event loop alive (the node used to print "stopped" and never
 * exit), or one that touches relup.state after the node stopped (the node used
 * to crash with "module web has no state", exit 1).
 */
const release = (body: string) => ({
  'rel/release.yaml': 'name: leaky\nversion: 1.0.0\nruntime: node\nstart:\n  main: web\nmodules:\n  web:\n    file: web.js\n    exports: [initialState, start]\n',
  'rel/web.js': `exports.initialState = () => ({ ticks: 0 });\nexports.start = () => {\n${body}\n};\n`,
});

const cases = [
  { name: 'an empty plain setInterval', body: '  setInterval(() => {}, 50);', signal: 'SIGTERM' as const },
  { name: 'a plain setInterval that touches relup.state', body: '  setInterval(() => { relup.state.ticks += 1; }, 20);', signal: 'SIGTERM' as const },
  { name: 'a plain setInterval that touches relup.state (SIGINT)', body: '  setInterval(() => { relup.state.ticks += 1; }, 20);', signal: 'SIGINT' as const },
  // relup.state throws once the node stopped: here inside a promise, so it is an unhandled rejection.
  { name: 'a raw socket server of its own and a promise that rejects after stop', body: "  const net = require('node:net');\n  net.createServer().listen(0, '127.0.0.1');\n  setInterval(() => { Promise.resolve().then(() => { relup.state.ticks += 1; }); }, 20);", signal: 'SIGTERM' as const },
];

describe('relup node start stops', { timeout: 60_000 }, () => {
  for (const c of cases) {
    it(`on ${c.signal}, exit 0 and no socket left, with ${c.name}`, async () => {
      const dir = await testdir(release(c.body));
      const node = await startNodeProcess(dir, { release: 'rel' });
      // Let the module's timers run a few times first.
      await new Promise((r) => setTimeout(r, 150));
      node.child.kill(c.signal);
      const timer = setTimeout(() => node.child.kill('SIGKILL'), 10_000);
      const result = await node.child;
      clearTimeout(timer);
      expect(result.signal, node.output()).toBeUndefined();
      expect(result.exitCode, node.output()).toBe(0);
      expect(node.output()).toContain('stopped');
      expect(await lstat(node.socket).then(() => 'present', () => 'gone')).toBe('gone');
    });
  }
});
