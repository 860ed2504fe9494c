import { describe, expect, it } from 'vitest';
import { findModuleCalls } from '../../src/runtime/node/module-requires.js';

const ids = (src: string) => findModuleCalls(src).map((c) => [c.kind, c.id ?? null, c.line, c.column, c.topLevel]);

describe('findModuleCalls', () => {
  it('finds require calls with their position and whether they run at load', () => {
    const src = ['const a = require("node:crypto");', "exports.f = () => require('left-pad');", 'function g() {', '  return require(`x`) + require("lodash");', '}'].join('\n');
    expect(ids(src)).toEqual([
      ['require', 'node:crypto', 1, 11, true],
      ['require', 'left-pad', 2, 19, false],
      ['require', 'lodash', 4, 25, false],
    ]);
  });

  it('skips comments, strings, templates and regular expressions', () => {
    const src = [
      '// require("a")',
      '/* require("b") */',
      'const s = "require(\\"c\\")";',
      'const t = `require("d") ${ {k: 1}.k } require("e")`;',
      'const r = /require\\("f"\\)/g;',
      'const q = 4 / 2 / 1; const x = require("g");',
    ].join('\n');
    expect(ids(src)).toEqual([['require', 'g', 6, 32, true]]);
  });

  it('finds plain setInterval calls, not relup.setInterval or setTimeout', () => {
    const src = 'exports.start = () => {\n  setInterval(tick, 50);\n  relup.setInterval(50, "m", "f");\n  setTimeout(done, 5);\n};';
    expect(ids(src)).toEqual([['timer', 'setInterval', 2, 3, false]]);
  });

  it('ignores property calls and computed ids, and finds dynamic import()', () => {
    const src = 'obj.require("a");\nrequire(name);\nconst m = import("h");';
    expect(ids(src)).toEqual([['import', null, 3, 11, true]]);
  });
});
