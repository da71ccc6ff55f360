/**
 * Shared by the libtorch-*.test.ts files: the Python oracle scripts under
 * __test__/python/libtorch, the seed's TheModelClass (the demo's, with its forward), and tensor comparison.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import { setNumThreads } from '../ts/backends';
import type { Tensor } from '../ts/tensor';
import { pythonPath } from './helpers/python';

/**
 * One intra-op thread for libtorch in this test process, as the Python oracle uses: on small
 * shared CI machines OpenMP workers spinning against other processes make a step 100x slower.
 */
export function singleThreaded(): void {
  setNumThreads(1);
}

export const LT_PY_DIR = join(__dirname, 'python', 'libtorch');

/** Runs `__test__/python/libtorch/<script> args...`; returns stdout, throws with stderr. */
export function runLtPy(script: string, args: string[] = []): string {
  const r = spawnSync(pythonPath(), ['-W', 'ignore', join(LT_PY_DIR, script), ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`python ${script} ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

/** The seed's model with the seed's forward, op for op: the demo's own class. */
export { TheModelClass } from '../ts/demo/seed';

/** Largest |a - b| / (1 + |b|) over the elements (shapes and dtypes must be equal). */
export function maxRelDiff(got: Tensor, want: Tensor): number {
  const a = got.toFloat64Array();
  const b = want.toFloat64Array();
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i]! - b[i]!) / (1 + Math.abs(b[i]!));
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Same shape and dtype, and values equal to 1e-6 (relative to 1 + |want|). */
export function expectClose(got: Tensor, want: Tensor, label: string, tol = 1e-6): void {
  expect([...got.size()], `${label}: shape`).toEqual([...want.size()]);
  expect(got.dtype, `${label}: dtype`).toBe(want.dtype);
  expect(got.device.type, `${label}: device`).toBe('cpu');
  expect(maxRelDiff(got, want), `${label}: max relative difference`).toBeLessThanOrEqual(tol);
}

/** The error code a call throws. */
export function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code ?? `no code: ${(e as Error).message}`;
  }
  return undefined;
}
