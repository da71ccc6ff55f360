/**
 * `torch.convert` as a long-running job: progress events, AbortSignal cancellation, the event
 * loop staying free, and `torchsave convert` killed with SIGKILL leaving only complete
 * outputs (no temporary files). Inputs are a batch of biggish files made by real torch.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { type Digests, listFiles, py, tmp } from './convert-helpers';
import { REPO_ROOT } from './helpers/python';

const CLI = join(REPO_ROOT, 'dist', 'cli.js');
const COUNT = 16;
let batch: string[] = [];
let dir = '';

beforeAll(() => {
  dir = tmp('batch');
  // 16 files of 2M float32 (8 MB) each.
  batch = py([['make-batch', join(dir, 'in'), COUNT, 2_000_000]])[0] as string[];
});

describe('convert off the event loop', () => {
  it('delivers start and finish events for every file before resolving', async () => {
    const events: torch.ConvertProgress[] = [];
    const reports = await torch.convert(batch.slice(0, 6), { out: tmp('prog'), jobs: 2, onProgress: (e) => events.push(e) });
    expect(reports.every((r) => !r.error)).toBe(true);
    const starts = events.filter((e) => !e.report);
    const dones = events.filter((e) => e.report);
    expect(starts).toHaveLength(6);
    expect(dones).toHaveLength(6);
    expect(dones.map((e) => e.done).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    for (const e of events) expect(e.total).toBe(6);
    expect(new Set(dones.map((e) => e.input))).toEqual(new Set(batch.slice(0, 6)));
    expect(dones.every((e) => e.report!.tensors === 2)).toBe(true);
  });

  it('keeps the event loop ticking while it works', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = Date.now();
    const reports = await torch.convert(batch, { out: tmp('tick'), jobs: 1, dtype: 'float16', verify: true });
    const ms = Date.now() - t0;
    clearInterval(timer);
    expect(reports.every((r) => !r.error && r.verified)).toBe(true);
    // A blocked loop would tick at most once; a free one about every 5 ms.
    expect(ms).toBeGreaterThan(50);
    expect(ticks).toBeGreaterThan(Math.min(10, ms / 20));
  });

  it('an AbortSignal cancels: the rest is skipped and the promise rejects with E_CANCELLED', async () => {
    const ac = new AbortController();
    const out = tmp('cancel');
    let err: unknown;
    try {
      await torch.convert(batch, {
        out,
        jobs: 1,
        onProgress: (e) => {
          if (e.report) ac.abort();
        },
        signal: ac.signal,
      });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'E_CANCELLED' });
    const reports = (err as torch.ConvertCancelledError).reports;
    expect(reports).toHaveLength(COUNT);
    const skipped = reports.filter((r) => r.error?.code === 'E_CANCELLED');
    const done = reports.filter((r) => !r.error);
    expect(done.length).toBeGreaterThanOrEqual(1);
    expect(skipped.length).toBeGreaterThan(COUNT / 2);
    expect(done.length + skipped.length).toBe(COUNT);
    expect(listFiles(out)).toHaveLength(done.length);
    // Already aborted: nothing starts.
    await expect(torch.convert(batch, { out, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'E_CANCELLED' });
  });
});

describe('torchsave convert killed with SIGKILL', () => {
  it('leaves no temporary files, and every output present is complete', async () => {
    const out = tmp('kill');
    const child = spawn(process.execPath, [CLI, 'convert', ...batch, '--out', out, '--jobs', '1', '--verify', '--dtype', 'bfloat16'], {
      stdio: 'ignore',
    });
    const exited = new Promise<void>((res) => child.on('exit', () => res()));
    // Kill as soon as the first output is there: later files are mid-write or not started.
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const names = existsSync(out) ? readdirSync(out) : [];
      if (names.some((n) => n.endsWith('.safetensors'))) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    child.kill('SIGKILL');
    await exited;
    const files = listFiles(out);
    expect(files.length).toBeGreaterThanOrEqual(1);
    expect(files.length).toBeLessThan(COUNT);
    // Only final names: no hidden temporaries, nothing else.
    for (const f of files) expect(f).toMatch(/^b\d{3}\.safetensors$/);
    const res = py(files.map((f) => ['digests', join(out, f)])) as Digests[];
    for (const [i, d] of res.entries()) {
      expect(Object.keys(d).sort(), files[i]).toEqual(['b', 'w']);
      expect(d.w![0]).toBe('bfloat16');
      expect(d.w![1]).toEqual([2_000_000]);
    }
  });
});
