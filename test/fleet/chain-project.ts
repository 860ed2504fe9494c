import { testdir, type Tree } from '../helpers/testdir.js';

/**
 * A small Node.js app with four releases whose appups only connect
 * neighbours: 1.0.0 → 1.1.0 → 1.2.0 → 1.3.0 (and back down). No entry
 * connects 1.0.0 to 1.3.0, so going there takes three hops.
 *
 * - `greet` has no state and changes in 1.1.0 and 1.3.0 (`load`);
 * - `counter` owns module state `{ count }` and changes in 1.2.0, which adds a
 *   `max` key through the `addMax` migration (`dropMax` on the way down).
 */
export async function chainProject(): Promise<string> {
  const versions = ['1.0.0', '1.1.0', '1.2.0', '1.3.0'];
  const tree: Tree = {};
  for (const v of versions) {
    const greetVersion = v === '1.0.0' ? 1 : v === '1.3.0' ? 3 : 2;
    const withMax = v >= '1.2.0';
    tree[`releases/${v}/greet.js`] = `// greet, generation ${greetVersion}\nexports.hello = (name) => \`hello ${greetVersion} \${name}\`;\n`;
    tree[`releases/${v}/counter.js`] = [
      `// counter${withMax ? ', with a high-water mark' : ''}`,
      `exports.initialState = () => (${withMax ? '{ count: 0, max: 0 }' : '{ count: 0 }'});`,
      `exports.bump = () => { relup.state.count += 1;${withMax ? ' relup.state.max = Math.max(relup.state.max, relup.state.count);' : ''} return relup.state.count; };`,
      'exports.get = () => relup.state.count;',
      ...(withMax ? ['exports.addMax = (state) => ({ ...state, max: state.count });', 'exports.dropMax = (state) => { const { max, ...rest } = state; return rest; };'] : []),
      '',
    ].join('\n');
    tree[`releases/${v}/release.yaml`] = [
      'name: chain',
      `version: ${v}`,
      'runtime: node',
      'modules:',
      '  greet:',
      '    file: greet.js',
      '    exports: [hello]',
      '  counter:',
      '    file: counter.js',
      `    exports: [initialState, bump, get${withMax ? ', addMax, dropMax' : ''}]`,
      '',
    ].join('\n');
  }
  tree['appups/1.1.0.yaml'] = 'version: 1.1.0\nup:\n  - from: 1.0.0\n    instructions:\n      - load: greet\ndown:\n  - to: 1.0.0\n    instructions:\n      - load: greet\n';
  tree['appups/1.2.0.yaml'] =
    'version: 1.2.0\nup:\n  - from: 1.1.0\n    instructions:\n      - update: counter\n        migration: addMax\ndown:\n  - to: 1.1.0\n    instructions:\n      - update: counter\n        migration: dropMax\n';
  tree['appups/1.3.0.yaml'] = 'version: 1.3.0\nup:\n  - from: 1.2.0\n    instructions:\n      - load: greet\ndown:\n  - to: 1.2.0\n    instructions:\n      - load: greet\n';
  return testdir(tree);
}
