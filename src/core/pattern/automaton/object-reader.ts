import type { EventValues, PathState } from './event-values.js';
import { probeNamesUpTo, visitValue } from './event-values.js';

/**
 * Past this many dot-prefixes with names, no code is generated and the generic walk reads events: the
 * source would grow with the patterns' field names, and compiling it would cost more than it saves.
 */
const maxGeneratedStates = 512;

/** Reads the used fields of one parsed event (an object, not an array) into `values`. */
export type ObjectReader = (event: object, values: EventValues) => void;

/**
 * Compiles the tree of used field names into straight-line code: one function per dot-prefix, reading
 * each name with its own property access. Reading names through one shared `object[name]` site makes
 * that site megamorphic, and every read then costs a lookup by name; with a site per name, events of
 * the same shape read each field at the cost of a field load. This is the cost that does not shrink
 * with fewer rules: at 10 rules it was a third of the time to match a parsed event.
 *
 * Names are written into the source only as JSON string literals, so no rulebook text becomes code.
 * Arrays go to the generic walk ({@link visitValue}), which reads them the same way, and so do objects
 * at a prefix with more names than are worth probing one by one (it reads those by their own keys).
 * Where code cannot be generated (a runtime started with `--disallow-code-generation-from-strings`),
 * or patterns use so many names that the code would be large, the generic walk reads the whole event
 * instead: slower, and the same result.
 */
export function compileObjectReader(root: PathState): ObjectReader {
  const generic: ObjectReader = (event, values) => visitValue(event, root, null, values);
  if (morePrefixesWithNames(root, maxGeneratedStates)) return generic;
  try {
    return generate(root);
  } catch (error) {
    if (error instanceof EvalError) return generic;
    throw error;
  }
}

/** Whether more than `limit` dot-prefixes of the tree have names below them (each would get a function). */
function morePrefixesWithNames(root: PathState, limit: number): boolean {
  const seen = new Set<PathState>();
  const stack = [root];
  while (stack.length > 0) {
    const state = stack.pop()!;
    if (seen.has(state) || state.names.length === 0) continue;
    seen.add(state);
    if (seen.size > limit) return true;
    for (const child of state.children) stack.push(child);
  }
  return false;
}

function generate(root: PathState): ObjectReader {
  const states: PathState[] = [root];
  const numbers = new Map<PathState, number>([[root, 0]]);
  const numberOf = (state: PathState): number => {
    let n = numbers.get(state);
    if (n === undefined) {
      n = states.length;
      numbers.set(state, n);
      states.push(state);
    }
    return n;
  };
  const functions: string[] = [];
  // `states` grows as children are numbered: each gets its function in turn.
  for (let k = 0; k < states.length; k++) {
    const state = states[k]!;
    const record = (value: string) =>
      state.pathId >= 0 ? `values.record(${state.pathId}, ${value}, c);` : '';
    const lines = [`function v${k}(x, c, values) {`, "  if (typeof x === 'object') {"];
    lines.push(`    if (x === null) { ${record('null')} return; }`);
    lines.push(`    if (isArray(x)) { visitValue(x, states[${k}], c, values); return; }`);
    if (state.names.length > probeNamesUpTo) {
      lines.push(`    visitValue(x, states[${k}], c, values);`);
    } else if (state.names.length > 0) {
      // Class instances (Map, Date, ...) may answer names through their prototype: check ownership.
      lines.push(
        '    const p = getPrototypeOf(x);',
        '    const plain = p === objectPrototype || p === null;',
      );
      lines.push('    let y;');
      state.names.forEach((name, i) => {
        const key = JSON.stringify(name);
        const inherited = state.inherited[i] === true;
        const owned = inherited ? `isOwn.call(x, ${key})` : `(plain || isOwn.call(x, ${key}))`;
        lines.push(
          `    y = x[${key}];`,
          `    if (y !== undefined && ${owned}) v${numberOf(state.children[i]!)}(y, c, values);`,
        );
      });
    }
    lines.push('  }');
    if (state.pathId >= 0) {
      lines.push(
        "  else if (typeof x === 'string' || typeof x === 'boolean' || (typeof x === 'number' && isFinite(x))) {",
        `    ${record('x')}`,
        '  }',
      );
    }
    lines.push('}');
    functions.push(lines.join('\n'));
  }
  const source = `${functions.join('\n')}\nreturn (event, values) => v0(event, null, values);`;
  const factory = new Function(
    'states',
    'visitValue',
    'isArray',
    'getPrototypeOf',
    'objectPrototype',
    'isOwn',
    'isFinite',
    source,
  ) as (...args: unknown[]) => ObjectReader;
  return factory(
    states,
    visitValue,
    Array.isArray,
    Object.getPrototypeOf,
    Object.prototype,
    Object.prototype.propertyIsEnumerable,
    Number.isFinite,
  );
}
