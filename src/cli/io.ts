import type { Writable } from 'node:stream';

/** What every command gets from the CLI edge; tests pass their own streams and cwd. */
export interface CommandIo {
  cwd: string;
  stdout: Writable;
  stderr: Writable;
  /** Colour output on stdout/stderr (a TTY and no NO_COLOR / --no-color). */
  color: boolean;
}

export function write(stream: Writable, text: string): void {
  stream.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
}
