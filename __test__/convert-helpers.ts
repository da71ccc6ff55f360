/**
 * Shared by __test__/convert*.test.ts: the Python checker (__test__/python/convert/check.py,
 * real torch + the real `safetensors` package) and an in-process CLI runner.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { runCli } from '../ts/cli';
import { REPO_ROOT, pythonPath } from './helpers/python';

const CHECK = join(REPO_ROOT, '__test__', 'python', 'convert', 'check.py');

/** key -> [dtype, shape, sha256]. */
export type Digests = Record<string, [string, number[], string]>;

/** Runs check.py calls in one Python process (one torch import). */
export function py(calls: unknown[][]): unknown[] {
  const r = spawnSync(pythonPath(), ['-W', 'ignore', CHECK, JSON.stringify(calls)], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`check.py exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as unknown[];
}

export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

export function tmp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `torchsave-${prefix}-`));
}

/** Every file under `dir` (hidden ones included), relative, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}
