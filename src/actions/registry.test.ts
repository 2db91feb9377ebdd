import Type from 'typebox';
import { describe, expect, it } from 'vitest';
import type { ReflexError } from '../core/errors.js';
import type { Action } from '../core/ports/action.js';
import { builtinActions, createActionRegistry } from './registry.js';
import { createRecordingContext } from './test-context.js';

const echo: Action<string> = {
  kind: 'echo',
  params: Type.String(),
  parse: (params) => String(params),
  run: async (params) => ({ echoed: params }),
};

describe('action registry', () => {
  it('registry - offers the five built-in actions by default', () => {
    const registry = createActionRegistry();
    expect(registry.kinds()).toEqual(['http', 'exec', 'emit', 'fact', 'log']);
    expect(registry.get('http')).toBe(builtinActions[0]);
    expect(registry.get('script')).toBeUndefined();
    expect(registry.get('toString')).toBeUndefined();
  });

  it('registry - serves the actions it is given, ready to run', async () => {
    const registry = createActionRegistry([...builtinActions, echo]);
    expect(registry.kinds()).toContain('echo');
    const action = registry.get('echo')!;
    expect(await action.run(action.parse('hi'), createRecordingContext())).toEqual({ echoed: 'hi' });
  });

  it('registry - refuses two actions of one kind', () => {
    expect(() => createActionRegistry([echo, echo])).toThrow(
      expect.objectContaining({ code: 'REFLEX_ERR_CONFIG_INVALID' }) as ReflexError,
    );
  });

  it('registry - the built-in list cannot be changed', () => {
    expect(Object.isFrozen(builtinActions)).toBe(true);
  });
});
