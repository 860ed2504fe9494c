/**
 * Suspend groups: the weakly connected components of the dependency graph
 * between the modules an upgrade switches. Unrelated updates land in separate
 * groups so each gets its own, shorter suspension window.
 *
 * Pure and O((n + e) log n): union-find for the components, Kahn's algorithm
 * with a min-heap (ties broken by name) for a deterministic dependencies-first
 * order.
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
  /** Cycles found (each as the sorted names of the modules left in it); ordering inside them falls back to names. */
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
  const indegree = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const seen = new Set<number>();
    for (const dep of graph.deps.get(names[i]!) ?? []) {
      const j = index.get(dep);
      if (j === undefined || j === i || seen.has(j)) continue;
      seen.add(j);
      dependents[j]!.push(i);
      indegree[i]! += 1;
      union(i, j);
    }
  }

  const order = topologicalOrder(n, dependents, indegree);
  const cycles = order.length < n ? findCycleLeftovers(n, order, names, find) : [];

  // Place every node (including cycle members, appended in name order) into its component.
  const placed = new Uint8Array(n);
  for (const i of order) placed[i] = 1;
  for (let i = 0; i < n; i++) if (placed[i] === 0) order.push(i);

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

function topologicalOrder(n: number, dependents: number[][], indegree: Int32Array): number[] {
  const remaining = Int32Array.from(indegree);
  const heap = new MinHeap();
  for (let i = 0; i < n; i++) if (remaining[i] === 0) heap.push(i);
  const order: number[] = [];
  while (heap.size > 0) {
    const i = heap.pop();
    order.push(i);
    for (const d of dependents[i]!) {
      remaining[d]! -= 1;
      if (remaining[d] === 0) heap.push(d);
    }
  }
  return order;
}

function findCycleLeftovers(n: number, order: number[], names: string[], find: (x: number) => number): string[][] {
  const done = new Uint8Array(n);
  for (const i of order) done[i] = 1;
  const byRoot = new Map<number, string[]>();
  for (let i = 0; i < n; i++) {
    if (done[i] === 1) continue;
    const root = find(i);
    let list = byRoot.get(root);
    if (list === undefined) byRoot.set(root, (list = []));
    list.push(names[i]!);
  }
  return [...byRoot.entries()].sort((a, b) => a[0] - b[0]).map(([, l]) => l);
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
