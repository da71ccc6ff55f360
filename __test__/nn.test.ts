import { describe, expect, it } from 'vitest';
import { HAVE_PYTHON, MODEL_NAMES, build, enc, runPy } from './nn-helpers';

describe('nn modules match torch 2.11 (pickled __dict__ and state_dict)', () => {
  const py = HAVE_PYTHON ? runPy<Record<string, { pickle: unknown; state_dict: unknown }>>('describe.py') : {};
  for (const name of MODEL_NAMES) {
    it(`${name}: state_dict keys, shapes, dtypes, _metadata`, () => {
      expect(enc(build(name).stateDict())).toEqual(py[name]!.state_dict);
    });
    it(`${name}: pickled module tree`, () => {
      expect(enc(build(name))).toEqual(py[name]!.pickle);
    });
  }
});
