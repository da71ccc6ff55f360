/**
 * torch.repr against Python 3.11's repr(): every expected string is printed by the venv's
 * Python in this test, never typed in.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { markPyFloat, repr } from '../ts/index';
import { Device, DTypeRef, OrderedDict, PyByteArray, PyComplex, PyFloat, PyFrozenSet, PyTuple, Size } from '../ts/values';
import { pythonPath } from './helpers/python';

function withFloat<T extends object>(container: T, ...keys: unknown[]): T {
  for (const k of keys) markPyFloat(container, k);
  return container;
}

// [python expression, the TS value torchsave would hold for it]
const CASES: [string, unknown][] = [
  ["{'lr': 0.001, 'momentum': 0.9, 'dampening': 0, 'weight_decay': 0, 'nesterov': False, 'params': [0, 1]}",
    new Map<string, unknown>([['lr', 0.001], ['momentum', 0.9], ['dampening', 0], ['weight_decay', 0], ['nesterov', false], ['params', [0, 1]]])],
  ["{'lr': 1.0, 'eps': 1e-08, 'betas': (0.9, 0.999), 'weight_decay': 0.0}",
    withFloat(new Map<string, unknown>([['lr', 1], ['eps', 1e-8], ['betas', PyTuple.fromItems([0.9, 0.999])], ['weight_decay', 0]]), 'lr', 'weight_decay')],
  ['0.001', 0.001],
  ['1e-08', 1e-8],
  ['0.9', 0.9],
  ['1.0', new PyFloat(1)],
  ['1e16', new PyFloat(1e16)],
  ['1e15', new PyFloat(1e15)],
  ['0.0001', 0.0001],
  ['1e-05', 1e-5],
  ['123456789012345678.0', 123456789012345678],
  ['-0.0', -0],
  ["float('nan')", NaN],
  ["float('inf')", Infinity],
  ["float('-inf')", -Infinity],
  ['2.5e-300', 2.5e-300],
  ['1.7976931348623157e308', 1.7976931348623157e308],
  ['5e-324', 5e-324],
  ['0.1 + 0.2', 0.1 + 0.2],
  ['1/3', 1 / 3],
  ['-1.5', -1.5],
  ['0', 0],
  ['-5', -5],
  ['2**70', 2n ** 70n],
  ['-(2**64)', -(2n ** 64n)],
  ['(1,)', PyTuple.fromItems([1])],
  ['()', new PyTuple()],
  ['(1, 2.0)', withFloat(PyTuple.fromItems([1, 2]), 1)],
  ['[1.0, 2, [3.0]]', withFloat([1, 2, withFloat([3], 0)], 0)],
  ["'abc'", 'abc'],
  ['"it\'s"', "it's"],
  ['\'say "hi"\'', 'say "hi"'],
  ['\'both \\\' and "\'', 'both \' and "'],
  ["'\\n\\t\\r\\\\'", '\n\t\r\\'],
  ["'\\x00\\x7f\\x80'", '\x00\x7f\x80'],
  ["'é中文🙂'", 'é中文🙂'],
  ["'\\u2028\\u00a0\\ufeff'", '\u2028\u00a0\ufeff'],
  ["b'abc'", new Uint8Array([97, 98, 99])],
  ["b\"\\x00\\xff'\"", new Uint8Array([0, 255, 39])],
  ["b'\\'\"'", new Uint8Array([39, 34])],
  ["bytearray(b'ab\\n')", PyByteArray.from([97, 98, 10])],
  ['None', null],
  ['True', true],
  ['False', false],
  ["__import__('collections').OrderedDict([('a', 1), ('b', (2,))])",
    new OrderedDict<string, unknown>([['a', 1], ['b', PyTuple.fromItems([2])]])],
  ["__import__('collections').OrderedDict()", new OrderedDict()],
  ['set()', new Set()],
  ['{1}', new Set([1])],
  ['frozenset()', new PyFrozenSet()],
  ["frozenset({'x'})", new PyFrozenSet(['x'])],
  ['1+2j', new PyComplex(1, 2)],
  ['2j', new PyComplex(0, 2)],
  ['complex(-0.0, 2)', new PyComplex(-0, 2)],
  ['complex(1, -2.5)', new PyComplex(1, -2.5)],
  ['complex(1e20, 1e-7)', new PyComplex(1e20, 1e-7)],
  ['{1: {}, (1, 2): [], None: {2: 3}}', new Map<unknown, unknown>([[1, new Map()], [PyTuple.fromItems([1, 2]), []], [null, new Map([[2, 3]])]])],
  ['torch.Size([6, 3, 5, 5])', Size.fromDims([6, 3, 5, 5])],
  ['torch.Size([])', new Size()],
  ["torch.device('cuda', 0)", new Device('cuda:0')],
  ["torch.device('cpu')", new Device('cpu')],
  ['torch.float32', new DTypeRef('float32')],
  ["{'state': {}, 'param_groups': [{'lr': 0.001, 'momentum': 0.9, 'dampening': 0, 'weight_decay': 0, 'nesterov': False, 'maximize': False, 'foreach': None, 'differentiable': False, 'fused': None, 'params': [0, 1, 2]}]}",
    new Map<string, unknown>([['state', new Map()], ['param_groups', [new Map<string, unknown>([['lr', 0.001], ['momentum', 0.9], ['dampening', 0], ['weight_decay', 0], ['nesterov', false], ['maximize', false], ['foreach', null], ['differentiable', false], ['fused', null], ['params', [0, 1, 2]]])]]])],
];

function pythonReprs(exprs: string[]): string[] {
  const script = 'import json, sys, torch\nprint(json.dumps([repr(eval(e)) for e in json.load(sys.stdin)]))';
  const r = spawnSync(pythonPath(), ['-c', script], { input: JSON.stringify(exprs), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as string[];
}

describe('repr matches Python 3.11', () => {
  const expected = pythonReprs(CASES.map(([e]) => e));
  CASES.forEach(([expr, value], i) => {
    it(expr, () => {
      expect(repr(value)).toBe(expected[i]);
    });
  });

  it('prints a recursive list like Python', () => {
    const l: unknown[] = [1];
    l.push(l);
    expect(repr(l)).toBe(pythonReprs(['(lambda l: (l.append(l), l)[1])([1])'])[0]);
  });
});
