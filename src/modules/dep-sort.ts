/**
 * depmod's dependency order inside a modules.dep line, recomputed for a pruned module set.
 *
 * What depmod does (kmod `tools/depmod.c`, `depmod_calculate_dependencies` and
 * `mod_get_all_sorted_dependencies`, read for the facts):
 *   - each module has a list of DIRECT dependencies (owners of the symbols it imports, in the
 *     order its ELF symbol table first names them) and a count of direct users;
 *   - a stack starts with every module that has no users, pushed in module order (modules.dep
 *     order); it pops a module, gives it the next "dep_sort_idx", and walks its direct deps in
 *     their list order, decrementing their user counts and pushing each one that reaches zero;
 *   - a modules.dep line is the full closure of a module sorted by dep_sort_idx. Modules left
 *     unsorted mean a cycle, which depmod refuses.
 *
 * What the index files tell us: the closure of every module (its line) and the module order.
 * Not the direct deps, nor their ELF order. Recovered here:
 *   - direct deps that matter = the transitive reduction of the closures. An extra direct edge
 *     U->C that is implied by a path U->X->C never decides when C's count reaches zero (X is
 *     always popped after U), so it changes nothing in the result;
 *   - the push order matters only when two or more deps of the popped module reach zero at that
 *     moment. Only then is `elfOrder` asked (the caller reads the module's imported symbols from
 *     its ELF image and maps them to owners: exact). Without it the order is inferred: deps
 *     released together are popped in reverse push order, so the ORIGINAL line lists them in
 *     reverse ELF order, and we push in descending original-line position. That reproduces the
 *     whole original modules.dep of both Debian trees exactly, but after pruning it can differ
 *     from depmod (7 of 142 lines in one full-tree test): still a valid order, same closures.
 */
import { UlfsError } from '../errors.js';

export interface SortInput {
  /** module paths in module order */
  paths: string[];
  /** closure of each module as indexes into `paths`, in the ORIGINAL line order */
  closure: number[][];
  /**
   * depmod's own order of a module's direct dependencies (owners of its imported symbols, from its
   * ELF image), asked only for modules with two or more direct deps (with fewer the order cannot
   * matter). Returns those deps in depmod's order (others in the list are ignored), or null when
   * unknown (then the order is inferred as described above).
   */
  elfOrder?: (module: number, direct: number[]) => number[] | null;
}

/** Returns, for each module, its closure re-sorted by the recomputed dep_sort_idx. */
export function sortDependencies(input: SortInput): number[][] {
  const n = input.paths.length;
  const closure = input.closure;
  assertAcyclic(input);
  const closureSets: Set<number>[] = closure.map((c) => new Set(c));
  // Transitive reduction, keeping the original line order.
  const users = new Uint32Array(n);
  const direct: number[][] = new Array(n);
  for (let i = 0; i < n; i++) {
    const c = closure[i]!;
    const r: number[] = [];
    for (const d of c) {
      let implied = false;
      for (const x of c) {
        if (x !== d && closureSets[x]!.has(d)) {
          implied = true;
          break;
        }
      }
      if (!implied) r.push(d);
    }
    for (const d of r) users[d]!++;
    direct[i] = r;
  }
  const stack: number[] = [];
  for (let i = 0; i < n; i++) if (users[i] === 0) stack.push(i);
  const sortIdx = new Int32Array(n).fill(-1);
  let sorted = 0;
  // Each module is pushed exactly once (when its count reaches zero), so this loop runs <= n times.
  while (stack.length) {
    const src = stack.pop()!;
    sortIdx[src] = sorted++;
    const r = direct[src]!;
    const freed: number[] = [];
    for (const d of r) if (--users[d]! === 0) freed.push(d);
    if (freed.length < 2) {
      if (freed.length) stack.push(freed[0]!);
      continue;
    }
    // Only here does depmod's order of this module's deps decide anything: ask for it (ELF), else
    // infer it (the original line lists deps released together in reverse push order).
    const order = exactOrder(input, src, r) ?? [...r].reverse();
    const isFreed = new Set(freed);
    for (const d of order) if (isFreed.has(d)) stack.push(d);
  }
  if (sorted < n) cycleError(input.paths, (i) => sortIdx[i]! < 0, n - sorted);
  return closure.map((c) => [...c].sort((a, b) => sortIdx[a]! - sortIdx[b]!));
}

function cycleError(paths: string[], stuckAt: (i: number) => boolean, count: number): never {
  const stuck: string[] = [];
  for (let i = 0; i < paths.length && stuck.length < 8; i++) if (stuckAt(i)) stuck.push(paths[i]!);
  throw new UlfsError(
    'MODDEP_CYCLE',
    `modules.dep has a dependency cycle among ${count} modules, e.g. ${stuck.join(' ')}`,
    {
      modules: stuck,
    },
  );
}

/**
 * Kahn's algorithm over every stored edge (module -> each module of its line). The reduction below
 * assumes a DAG (in a cycle every edge looks implied and would vanish), so check that first.
 */
function assertAcyclic(input: SortInput): void {
  const n = input.paths.length;
  const indeg = new Uint32Array(n);
  for (let i = 0; i < n; i++) for (const d of input.closure[i]!) indeg[d]!++;
  const todo: number[] = [];
  for (let i = 0; i < n; i++) if (indeg[i] === 0) todo.push(i);
  let done = 0;
  while (todo.length) {
    const i = todo.pop()!;
    done++;
    for (const d of input.closure[i]!) if (--indeg[d]! === 0) todo.push(d);
  }
  if (done < n) cycleError(input.paths, (i) => indeg[i]! > 0, n - done);
}

/** depmod's push order for module i from its ELF imports, restricted to its direct deps `r`. */
function exactOrder(input: SortInput, i: number, r: number[]): number[] | null {
  const got = input.elfOrder?.(i, r);
  if (!got) return null;
  const want = new Set(r);
  const out: number[] = [];
  for (const d of got) if (want.has(d) && !out.includes(d)) out.push(d);
  // Every direct dependency must come from an imported symbol, or the image is not the one indexed.
  return out.length === r.length ? out : null;
}
