import { UserError } from '../errors/errors.js';

/** How the CLI reaches a node. */
export type Target = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/**
 * `./node.sock`, `/run/relup/demo.sock` → a Unix socket; `127.0.0.1:7070`,
 * `[::1]:7070`, `localhost:7070` → TCP. Names from relup.config.yaml are
 * resolved before this is called.
 */
export function parseTarget(text: string): Target {
  const t = text.trim();
  if (t === '') throw new UserError('empty target', 'pass --target with a socket path or host:port');
  if (t.includes('/') || t.endsWith('.sock')) return { kind: 'unix', path: t };
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(t);
  if (m !== null) {
    const port = Number(m[3]);
    if (port < 1 || port > 65535) throw new UserError(`port out of range in target "${t}"`, 'use a port between 1 and 65535');
    return { kind: 'tcp', host: (m[1] ?? m[2])!, port };
  }
  throw new UserError(`cannot tell what target "${t}" is`, 'use a socket path (./node.sock), host:port (127.0.0.1:7070), or a target name from relup.config.yaml');
}

export function describeTarget(target: Target): string {
  return target.kind === 'unix' ? target.path : `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
}
