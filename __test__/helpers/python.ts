/**
 * The bridge from vitest to the Python oracle (real PyTorch).
 *
 * `pythonPath()` is `$TORCHSAVE_PYTHON` (scripts/test.sh exports it) or the default venv that
 * scripts/python-env.sh creates; it THROWS when neither exists, so interop tests fail rather
 * than skip on a machine without the oracle. `ensureFixtures()` runs scripts/fixtures.sh,
 * which regenerates `__test__/fixtures/generated/` only when the generating scripts changed,
 * so `npx vitest run` alone works too. The JSON shapes are documented in
 * `__test__/python/oracle.py` (describe / inspect-json) and `make_fixtures.py` (sidecars).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '..', '..');
const ORACLE = join(REPO_ROOT, '__test__', 'python', 'oracle.py');

/** A node of `oracle.py describe` output: tagged by `t` (see oracle.py's header). */
export interface OracleNode {
  t: string;
  [field: string]: unknown;
}

export interface DescribeResult {
  oracle: number;
  torch: string;
  format: 'zip' | 'legacy' | 'tar' | 'pickle';
  weights_only: boolean;
  map_location: string | null;
  value: OracleNode;
}

export interface InspectTensor {
  path: (string | number)[];
  dtype: string;
  shape: number[];
  stride: number[] | null;
  storage_offset: number | null;
  requires_grad: boolean;
  sha256: string;
  layout?: string;
}

/** A numpy array in inspect-json's `arrays` list. */
export interface InspectArray {
  kind: 'numpy';
  path: (string | number)[];
  /** numpy's `dtype.name`. */
  dtype: string;
  shape: number[];
  sha256: string | null;
}

export interface InspectResult {
  format: 'zip' | 'legacy' | 'tar' | 'pickle';
  tensors: InspectTensor[];
  arrays: InspectArray[];
  globals: string[];
  weights_only_ok: boolean;
}

/** `<fixture>.expected.json`, written by make_fixtures.py through the oracle. */
export interface Sidecar {
  file: string;
  description: string;
  producer: string;
  format: InspectResult['format'];
  weights_only_ok: boolean;
  load: { weights_only: boolean; map_location: string | null };
  value: OracleNode;
  inspect: InspectResult;
  notes: string[];
}

export interface FixtureIndex {
  torch: string;
  /** Version of the torch 1.x that wrote the t113_* files, or null when none was available. */
  torch113: string | null;
  fixtures: {
    file: string;
    description: string;
    producer: string;
    tags: string[];
    format: string;
    weights_only_ok: boolean;
  }[];
}

/** attacks/attacks.json: file -> the error codes torchsave may raise for it. */
export type AttackTable = Record<
  string,
  { codes: string[]; readme: string; torch_weights_only: 'loads' | 'rejects'; torch_error: string | null }
>;

export function pythonPath(): string {
  const env = process.env.TORCHSAVE_PYTHON;
  const venv = process.env.TORCHSAVE_PYENV ?? join(homedir(), '.cache', 'torchsave', 'venv-torch-2.11.0');
  const p = env && env.length > 0 ? env : join(venv, 'bin', 'python');
  if (!existsSync(p)) {
    throw new Error(
      `The Python oracle (torch 2.11) is missing: ${p} does not exist. ` +
        'Run `bash scripts/python-env.sh` (or `npm test`, which does) to create it.',
    );
  }
  return p;
}

/** Runs `oracle.py <args>` and returns its parsed JSON; throws with Python's stderr on failure. */
export function runOracle(args: readonly string[]): unknown {
  return spawnOracle(args);
}

/**
 * Many oracle calls for one torch import (~2-5 s saved per call): returns each call's JSON
 * in order; throws if any call failed, naming it.
 */
export function runOracleBatch(calls: readonly (readonly string[])[]): unknown[] {
  const out = spawnOracle(['batch'], JSON.stringify(calls)) as { ok: boolean; result?: unknown; error?: string }[];
  return out.map((r, i) => {
    if (!r.ok) throw new Error(`oracle.py ${calls[i]!.join(' ')}: ${r.error}`);
    return r.result;
  });
}

function spawnOracle(args: readonly string[], input?: string): unknown {
  const r = spawnSync(pythonPath(), ['-W', 'ignore', ORACLE, ...args], {
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
    input,
  });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    throw new Error(`oracle.py ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  }
  return JSON.parse(r.stdout) as unknown;
}

export function fixturesDir(): string {
  return join(REPO_ROOT, '__test__', 'fixtures', 'generated');
}

export function attacksDir(): string {
  return join(fixturesDir(), 'attacks');
}

/** Generates the fixtures when their stamp is missing or stale; returns fixturesDir(). */
export function ensureFixtures(): string {
  execFileSync('bash', [join(REPO_ROOT, 'scripts', 'fixtures.sh')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, TORCHSAVE_PYTHON: pythonPath() },
  });
  return fixturesDir();
}

function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

export function fixturePath(file: string): string {
  return join(fixturesDir(), file);
}

export function readSidecar(file: string): Sidecar {
  return readJson<Sidecar>(fixturePath(`${file}.expected.json`));
}

export function readFixtureIndex(): FixtureIndex {
  return readJson<FixtureIndex>(fixturePath('index.json'));
}

export function readAttacks(): AttackTable {
  return readJson<AttackTable>(join(attacksDir(), 'attacks.json'));
}
