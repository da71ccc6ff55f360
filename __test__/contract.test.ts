/**
 * Guards of the cross-language contracts whose one owner is crate/core: the generated
 * ts/generated/{contract,dtype-constants}.ts equal what the loaded binding's `contract()`
 * exports (error codes, dtype table), the TS dtype helpers and `torch.<dtype>` constants come
 * from that table, and every code the libtorch addon can throw is in the list.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as torch from '../ts';
import { DTYPES, elementSize, isComplex, isFloatingPoint } from '../ts/dtype';
import { ERROR_CODES } from '../ts/errors';
import { REPO_ROOT } from './helpers/python';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../native/bindings.js') as { contract(): unknown };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const gen = require('../scripts/gen-contract.js') as { files(c: unknown): [string, string][] };

describe('the error-code and dtype contract', () => {
  it('the generated files are what the binding exports now (run npm run build when this fails)', () => {
    for (const [file, text] of gen.files(binding.contract())) expect(readFileSync(file, 'utf8'), file).toBe(text);
  });

  it('the TS lists are the binding\'s lists', () => {
    const c = binding.contract() as { errorCodes: string[]; dtypes: { name: string; itemsize: number; isFloatingPoint: boolean; isComplex: boolean }[] };
    expect([...ERROR_CODES]).toEqual(c.errorCodes);
    expect([...DTYPES]).toEqual(c.dtypes.map((d) => d.name));
    expect(DTYPES.length).toBeGreaterThanOrEqual(32);
    for (const d of c.dtypes) {
      const name = d.name as (typeof DTYPES)[number];
      expect([elementSize(name), isFloatingPoint(name), isComplex(name)], d.name).toEqual([d.itemsize, d.isFloatingPoint, d.isComplex]);
      expect((torch as unknown as Record<string, unknown>)[d.name], `torch.${d.name}`).toBe(d.name);
    }
  });

  it('codes are unique E_SCREAMING_SNAKE', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const c of ERROR_CODES) expect(c).toMatch(/^E_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  });

  it('every code the libtorch addon and the facade write is in the list', () => {
    // The addon names codes as ErrorCode variants (crate/libtorch/src), the facade as strings.
    const variants = new Map<string, string>();
    const errorRs = readFileSync(join(REPO_ROOT, 'crate', 'core', 'src', 'error.rs'), 'utf8');
    for (const m of errorRs.matchAll(/^\s+(\w+) => "(E_[A-Z0-9_]+)",$/gm)) variants.set(m[1]!, m[2]!);
    const src = join(REPO_ROOT, 'crate', 'libtorch', 'src');
    const used = new Set<string>();
    for (const f of readdirSync(src).filter((f) => f.endsWith('.rs'))) {
      const text = readFileSync(join(src, f), 'utf8');
      for (const m of text.matchAll(/ErrorCode::(\w+)/g)) used.add(m[1]!);
      // No code may travel inside a message any more.
      expect(text, f).not.toMatch(/"E_[A-Z_]+: /);
    }
    expect(used.size).toBeGreaterThan(3);
    for (const v of used) expect(ERROR_CODES, `ErrorCode::${v}`).toContain(variants.get(v));
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? (e.name === 'generated' ? [] : walk(join(dir, e.name))) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
      );
    for (const f of walk(join(REPO_ROOT, 'ts'))) {
      for (const m of readFileSync(f, 'utf8').matchAll(/['"`](E_[A-Z0-9_]+)['"`]/g)) expect(ERROR_CODES, `${f}: ${m[1]}`).toContain(m[1]);
    }
  });
});
