/**
 * scripts/gpu-check.js, the check a GPU machine runs (see docs/libtorch.md), exercised here on
 * the CPU so its logic cannot rot between GPU runs: every comparison against PyTorch must pass
 * except the one digest `--inject-mismatch` corrupts on purpose, which must make the run fail
 * (exit 1). Uses dist/ and the libtorch addon, like the check itself (scripts/test.sh builds
 * both before vitest).
 *
 * With TORCHSAVE_GPU_TESTS=1 on a machine with CUDA, the same check also runs on cuda:0.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythonPath, REPO_ROOT } from './helpers/python';

interface CheckResult {
  ok: boolean;
  device: string;
  checks: { name: string; ok: boolean; detail: unknown }[];
  error: string | null;
}

function runCheck(args: string[]): { status: number | null; result: CheckResult; stderr: string } {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts', 'gpu-check.js'), ...args], {
    env: { ...process.env, TORCHSAVE_PYTHON: pythonPath() },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return { status: r.status, result: JSON.parse(last) as CheckResult, stderr: r.stderr };
}

describe('scripts/gpu-check.js', () => {
  it('on the CPU: every check against PyTorch passes, and an injected mismatch fails the run', () => {
    const { status, result, stderr } = runCheck(['--device', 'cpu', '--small', '--no-perf', '--inject-mismatch']);
    expect(result.error, stderr.slice(-2000)).toBeNull();
    expect(result.device).toBe('cpu');
    const failed = result.checks.filter((c) => !c.ok).map((c) => c.name);
    expect(failed).toEqual(["loadAsync: file saved on the host, mapLocation 'cpu'"]);
    expect(String(result.checks.find((c) => !c.ok)!.detail)).toMatch(/^f16\.sha256/);
    expect(result.checks.length).toBe(18);
    expect(result.ok).toBe(false);
    expect(status).toBe(1);
  }, 300_000);

  it.runIf(process.env.TORCHSAVE_GPU_TESTS === '1')('on cuda:0 (TORCHSAVE_GPU_TESTS=1): every check passes', () => {
    const { status, result, stderr } = runCheck(['--device', 'cuda:0', '--small', '--no-perf']);
    expect(result.error, stderr.slice(-2000)).toBeNull();
    expect(result.checks.filter((c) => !c.ok)).toEqual([]);
    expect(status).toBe(0);
  }, 600_000);
});
