/**
 * Suspend groups: the weakly connected components of the dependency graph
 * between the modules an upgrade switches. Unrelated updates land in separate
 * groups so each gets its own, shorter suspension window.
 *
 * Pure and O((n + e) log n): union-find for the components; Tarjan's strongly
 * connected components so that only modules really in a cycle are reported as
 * one (a module that merely depends on a cycle is not in it); Kahn's algorithm
 * with a min-heap (ties broken by name) over those components for a
 * deterministic dependencies-first order. Inside a cycle no order is right, so
 * its members switch in name order, after everything the cycle depends on and
 * before everything that depends on it.
 */
export interface DependencyGraph {
  /** Module names; order does not matter. */
  nodes: readonly string[];
  /** `deps.get(m)` = modules `m` depends on (all of them in `nodes`). */
  deps: ReadonlyMap<string, readonly string[]>;
}

export interface GroupedOrder {
  /** Each group's modules, dependencies first. Groups ordered by their first module's name. */
  groups: string[][];
  /** The dependency cycles (strongly connected components of two or more modules), each in name order; their members switch in name order. */
  cycles: string[][];
}

export function suspendGroups(graph: DependencyGraph): GroupedOrder {
  const names = [...graph.nodes].sort(compareNames);
  const index = new Map<string, number>();
  names.forEach((n, i) => index.set(n, i));
  const n = names.length;

  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const union = (a: number, b: number): void => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };

  // Edge dep → dependent: a dependency must switch before the modules that call it.
  const dependents: number[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < n; i++) {
    const seen = new Set<number>();
    for (const dep of graph.deps.get(names[i]!) ?? []) {
      const j = index.get(dep);
      if (j === undefined || j === i || seen.has(j)) continue;
      seen.add(j);
      dependents[j]!.push(i);
      union(i, j);
    }
  }

  const components = stronglyConnected(n, dependents);
  const order = componentOrder(n, dependents, components);
  const sizes = new Int32Array(n);
  for (const c of components.of) sizes[c]! += 1;
  const cycleMembers = new Map<number, string[]>();
  for (let i = 0; i < n; i++) {
    const c = components.of[i]!;
    if (sizes[c]! < 2) continue;
    let list = cycleMembers.get(c);
    if (list === undefined) cycleMembers.set(c, (list = []));
    list.push(names[i]!);
  }
  // Members were pushed in index (= name) order; cycles are listed by their first name.
  const cycles = [...cycleMembers.values()].sort((a, b) => compareNames(a[0]!, b[0]!));

  const byRoot = new Map<number, string[]>();
  for (const i of order) {
    const root = find(i);
    let group = byRoot.get(root);
    if (group === undefined) byRoot.set(root, (group = []));
    group.push(names[i]!);
  }
  // Roots are the smallest index of the component, i.e. its alphabetically first module.
  const groups = [...byRoot.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g);
  return { groups, cycles };
}

/**
 * Tarjan's algorithm, iterative (a deep recursion would overflow on long
 * dependency chains). Edges go dependency → dependent. Returns each node's
 * component id and, per component, its smallest node index.
 */
function stronglyConnected(n: number, edges: number[][]): { of: Int32Array; count: number; first: number[] } {
  const index = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const onStack = new Uint8Array(n);
  const of = new Int32Array(n).fill(-1);
  const first: number[] = [];
  const stack: number[] = [];
  let counter = 0;
  let count = 0;
  const work: [number, number][] = [];
  for (let root = 0; root < n; root++) {
    if (index[root] !== -1) continue;
    work.push([root, 0]);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const [v, next] = frame;
      if (next === 0) {
        index[v] = low[v] = counter++;
        stack.push(v);
        onStack[v] = 1;
      }
      const out = edges[v]!;
      if (next < out.length) {
        frame[1] = next + 1;
        const w = out[next]!;
        if (index[w] === -1) work.push([w, 0]);
        else if (onStack[w] === 1) low[v] = Math.min(low[v]!, index[w]!);
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low[parent[0]] = Math.min(low[parent[0]]!, low[v]!);
      if (low[v] === index[v]) {
        let smallest = v;
        for (;;) {
          const w = stack.pop()!;
          onStack[w] = 0;
          of[w] = count;
          if (w < smallest) smallest = w;
          if (w === v) break;
        }
        first.push(smallest);
        count++;
      }
    }
  }
  return { of, count, first };
}

/** Nodes dependencies-first: components in topological order (ties: the component whose first name is smallest), members of a component in name order. */
function componentOrder(n: number, edges: number[][], components: { of: Int32Array; count: number; first: number[] }): number[] {
  const { of, count, first } = components;
  // Members of each component, in node (= name) order, as one flat array sliced by offsets.
  const size = new Int32Array(count + 1);
  for (let i = 0; i < n; i++) size[of[i]! + 1]! += 1;
  for (let c = 0; c < count; c++) size[c + 1]! += size[c]!;
  const fill = Int32Array.from(size);
  const members = new Int32Array(n);
  for (let i = 0; i < n; i++) members[fill[of[i]!]!++] = i;
  const indegree = new Int32Array(count);
  for (let v = 0; v < n; v++) for (const w of edges[v]!) if (of[v] !== of[w]) indegree[of[w]!]! += 1;
  // The heap holds each ready component's first (smallest) node index, i.e. its alphabetically first module.
  const heap = new MinHeap();
  for (let c = 0; c < count; c++) if (indegree[c] === 0) heap.push(first[c]!);
  const order: number[] = [];
  while (heap.size > 0) {
    const c = of[heap.pop()]!;
    for (let k = size[c]!; k < size[c + 1]!; k++) {
      const v = members[k]!;
      order.push(v);
      for (const w of edges[v]!) {
        const d = of[w]!;
        if (d === c) continue;
        indegree[d]! -= 1;
        if (indegree[d] === 0) heap.push(first[d]!);
      }
    }
  }
  return order;
}

/** Plain code-unit order: locale-independent, so scripts are byte-identical everywhere. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Binary min-heap of indices; indices are assigned in name order, so smaller = alphabetically first. */
class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const a = this.items;
    a.push(value);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= value) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = value;
  }

  pop(): number {
    const a = this.items;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
