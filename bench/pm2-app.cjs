'use strict';
// The demo service as a PM2 app, for the benchmark's `pm2 reload` comparison
// only. It runs the same release code as a relup node (the demo's modules,
// booted with startNode from dist/), but serves HTTP from its own server, so
// that it can shut down the way a PM2 app should: on SIGINT stop accepting,
// finish the requests in flight, close keep-alive connections, exit.
//
//   RELUP_BENCH_RELEASE  the release directory to boot (releases/1.2.2 or 1.2.3)
//   RELUP_BENCH_PORT     the port to serve on, 127.0.0.1
//
// Started by bench/load-bench.js with `pm2 start bench/pm2-app.cjs -i 2 --wait-ready`
// and switched with `pm2 reload --update-env` (the new worker says `ready`
// once it listens). Each answer carries `x-worker: <pid>`, so the benchmark
// can add up the counters of every worker.
const http = require('node:http');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const dist = (p) => pathToFileURL(path.join(__dirname, '..', 'dist', p)).href;

async function main() {
  const { startNode } = await import(dist('runtime/node/relup-node.js'));
  const { readReleaseFiles } = await import(dist('release/release-files.js'));
  const { releaseFromFiles } = await import(dist('release/release-from-files.js'));
  const dir = process.env.RELUP_BENCH_RELEASE;
  const port = Number(process.env.RELUP_BENCH_PORT);
  if (!dir || !Number.isInteger(port) || port <= 0) throw new Error('set RELUP_BENCH_RELEASE (a release directory) and RELUP_BENCH_PORT (the port to serve on)');
  const read = await readReleaseFiles(dir);
  if (read.value === undefined) throw new Error(`cannot read ${dir}: ${JSON.stringify(read.diagnostics)}`);
  const release = releaseFromFiles(read.value);
  if (release.value === undefined) throw new Error(`invalid release ${dir}: ${JSON.stringify(release.diagnostics)}`);
  // The release's own relup.listen binds an unused ephemeral port; requests come in through the server below.
  const node = await startNode({ image: { release: release.value, files: read.value.files }, config: { port: 0, host: '127.0.0.1', tickMs: 1000 }, log: () => {} });
  const api = node.module('http_api');

  let closing = false;
  const server = http.createServer((req, res) => {
    let body;
    const text = () =>
      (body ??= new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
      }));
    const request = { method: req.method, url: req.url, headers: { ...req.headers }, text, json: async () => JSON.parse(await text()) };
    Promise.resolve()
      .then(() => api.handle(request))
      .catch((e) => ({ status: 500, body: String(e?.message ?? e) }))
      .then((out) => {
        const isJson = out.json !== undefined;
        const payload = isJson ? JSON.stringify(out.json) : String(out.body ?? '');
        const headers = { 'content-type': isJson ? 'application/json' : 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(payload), 'x-worker': String(process.pid) };
        if (closing) headers.connection = 'close';
        res.writeHead(out.status ?? 200, headers);
        res.end(payload);
      });
  });
  server.keepAliveTimeout = 30_000; // as the relup node's servers
  server.listen({ port, host: '127.0.0.1' }, () => process.send?.('ready'));

  // PM2's graceful stop: SIGINT, then SIGKILL after kill_timeout.
  process.on('SIGINT', () => {
    closing = true;
    server.close(() => node.stop().finally(() => process.exit(0)));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2500).unref();
  });
}

main().catch((e) => {
  process.stderr.write(`pm2-app: ${e?.stack ?? e}\n`);
  process.exit(1);
});
