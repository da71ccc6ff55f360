/**
 * `torchsave inspect --json --sha256` on what issue 13 found missing, against the oracle's
 * inspect-json (real torch 2.11 and numpy): numpy arrays in the `arrays` list (kind numpy,
 * numpy's dtype name, shape, sha256 of C-order bytes) beside unchanged tensor entries, and
 * sparse tensors of every layout with the digest of their dense values. The files are the
 * generated fixtures and crate/core/tests/wild/ (made by make_wild.py from real torch).
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ts/cli';
import { type InspectResult, REPO_ROOT, ensureFixtures, fixturePath, runOracleBatch } from './helpers/python';

async function inspectJson(file: string): Promise<unknown> {
  let out = '';
  let err = '';
  const code = await runCli(['inspect', file, '--json', '--sha256'], { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  expect(code, err).toBe(0);
  return JSON.parse(out);
}

const wild = (name: string): string => join(REPO_ROOT, 'crate', 'core', 'tests', 'wild', name);

describe('inspect --json --sha256 equals the oracle', () => {
  beforeAll(() => {
    ensureFixtures();
  });

  it('numpy arrays, sparse tensors of every layout, a stale zip end record', async () => {
    const files = [fixturePath('numpy_values.pt'), fixturePath('sparse_coo.pt'), wild('sparse_layouts.pt'), wild('zip64_stale_eocd.pt')];
    const want = runOracleBatch(files.map((f) => ['inspect-json', f])) as InspectResult[];
    for (const [i, f] of files.entries()) expect(await inspectJson(f), f).toEqual(want[i]);
    const np = want[0]!;
    expect(np.arrays.map((a) => a.dtype)).toEqual(['float32', 'int64', 'bool', 'float64']);
    const sparse = want[2]!;
    expect(new Set(sparse.tensors.map((t) => t.layout ?? 'strided'))).toEqual(
      new Set(['sparse_coo', 'sparse_csr', 'sparse_csc', 'sparse_bsr', 'sparse_bsc', 'strided']),
    );
  });
});
