/**
 * `torch.convert` / `torchsave convert`, `inspectMany` / `inspect DIR`, `diff`, and
 * safetensors load/save, checked against real torch and the real `safetensors` package
 * (__test__/python/convert/check.py): outputs load there and hold the input's values.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as torch from '../ts/index';
import { TheModelClass } from '../ts/demo/seed';
import { type Digests, cli, listFiles, py, tmp } from './convert-helpers';
import { ProgressBar } from '../ts/cli/progress';
import { runCli } from '../ts/cli';
import { ensureFixtures, fixturePath } from './helpers/python';

const SEED = (): string => fixturePath('seed_state_dict.pt');
const DP = ['dataparallel_state_dict.pt', 'dataparallel_state_dict.legacy.pt', 'dataparallel_double_state_dict.pt'];

function stripModule(d: Digests): Digests {
  return Object.fromEntries(Object.entries(d).map(([k, v]) => [k.replace(/^(module\.)+/, ''), v]));
}

beforeAll(() => {
  ensureFixtures();
});

describe('pt -> safetensors -> pt, checked by torch and safetensors', () => {
  it('round trips the seed state dict and every tensor keeps its bytes', async () => {
    const d = tmp('rt');
    const [st] = await torch.convert(SEED(), { out: join(d, 'st'), to: 'safetensors', verify: true });
    expect(st!.error).toBeUndefined();
    expect(st!.verified).toBe(true);
    expect(st!.outputs).toEqual([join(d, 'st', 'seed_state_dict.safetensors')]);
    const [pt] = await torch.convert(st!.outputs[0]!, { out: join(d, 'pt'), to: 'pt' });
    expect(pt!.error).toBeUndefined();
    expect(pt!.outputs).toEqual([join(d, 'pt', 'seed_state_dict.pt')]);
    const [orig, viaSt, back] = py([
      ['digests', SEED()],
      ['digests', st!.outputs[0]],
      ['digests', pt!.outputs[0]],
    ]) as Digests[];
    expect(Object.keys(orig!)).toHaveLength(10);
    expect(viaSt).toEqual(orig);
    expect(back).toEqual(orig);
    // Our own reader agrees: torch.load of a .safetensors path, and diff says identical.
    const sd = torch.load<Map<string, torch.Tensor>>(st!.outputs[0]!);
    expect([...sd.keys()].sort()).toEqual(Object.keys(orig!).sort());
    const dd = await torch.diff(SEED(), st!.outputs[0]!);
    expect(dd).toEqual({ added: [], removed: [], changed: [], same: 10 });
  });

  it('--dtype float16 casts floats only and diff reports the rounding', async () => {
    const d = tmp('f16');
    const r = await cli('convert', SEED(), '--out', d, '--dtype', 'float16', '--json');
    expect(r.code).toBe(0);
    const out = join(d, 'seed_state_dict.safetensors');
    const [got] = py([['digests', out]]) as Digests[];
    for (const [k, [dtype]] of Object.entries(got!)) expect(dtype, k).toBe('float16');
    const df = await cli('diff', SEED(), out, '--json');
    expect(df.code).toBe(1);
    const doc = JSON.parse(df.out) as { identical: boolean; changed: { key: string; reason: string; maxAbsDiff: number | null }[] };
    expect(doc.identical).toBe(false);
    expect(doc.changed).toHaveLength(10);
    for (const c of doc.changed) expect(c.reason).toBe('dtype');
    const same = await cli('diff', SEED(), SEED());
    expect(same.code).toBe(0);
    expect(same.out).toContain('10 same, 0 changed');
  });

  it('saveSafetensors / loadSafetensors: read by safetensors.torch.load_file, metadata kept', () => {
    const d = tmp('st');
    const sd = torch.load<Map<string, torch.Tensor>>(SEED());
    const p = join(d, 'x.safetensors');
    torch.saveSafetensors(sd, p, { metadata: { producer: 'test' } });
    const [mine, orig] = py([
      ['digests', p],
      ['digests', SEED()],
    ]) as Digests[];
    expect(mine).toEqual(orig);
    const { stateDict, metadata } = torch.loadSafetensorsWithMetadata(p);
    expect(metadata).toEqual({ format: 'pt', producer: 'test' });
    // The file's order (the safetensors writer's: by dtype alignment, then name).
    expect([...stateDict.keys()].sort()).toEqual([...sd.keys()].sort());
    for (const [k, t] of sd) expect(stateDict.get(k)!.equal(t), k).toBe(true);
    const bytes = torch.saveSafetensors(sd, null, { metadata: { producer: 'test' } });
    expect(bytes.equals(readFileSync(p))).toBe(true);
    const info = torch.loadWithInfo(p).info;
    expect(info.format).toBe('safetensors');
  });
});

describe('DataParallel checkpoints normalized with --strip-dataparallel', () => {
  it('load strictly into the plain model in torch and in our nn', async () => {
    const d = tmp('dp');
    const inputs = DP.map(fixturePath);
    const r = await cli('convert', ...inputs, '--out', d, '--strip-dataparallel', '--verify', '--json');
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out) as { reports: torch.ConvertReport[] };
    const outs = doc.reports.map((x) => x.outputs[0]!);
    expect(outs.map((o) => basename(o)).sort()).toEqual(
      ['dataparallel_double_state_dict.safetensors', 'dataparallel_state_dict.legacy.safetensors', 'dataparallel_state_dict.safetensors'].sort(),
    );
    const res = py([...outs.map((o) => ['strict', o]), ['digests', inputs[0]], ...outs.map((o) => ['digests', o])]);
    for (let i = 0; i < outs.length; i++) expect(res[i]).toEqual({ ok: true });
    const want = stripModule(res[outs.length] as Digests);
    for (let i = 0; i < outs.length; i++) expect(res[outs.length + 1 + i], outs[i]).toEqual(want);
    for (const o of outs) {
      const model = new TheModelClass();
      const sd = torch.load<Map<string, torch.Tensor>>(o);
      const inc = model.loadStateDict(sd, { strict: true });
      expect(inc.missingKeys).toEqual([]);
      expect(inc.unexpectedKeys).toEqual([]);
      expect(model.stateDict().get('fc3.bias')!.equal(sd.get('fc3.bias')!)).toBe(true);
    }
  });

  it('--strip-prefix and --rename edit keys (pt target keeps a torch-loadable file)', async () => {
    const d = tmp('keys');
    const r = await cli('convert', fixturePath('dataparallel_state_dict.pt'), '--out', d, '--to', 'pt', '--strip-prefix', 'module.', '--rename', '^fc(\\d)\\.=>head$1.');
    expect(r.code, r.err).toBe(0);
    const [got] = py([['digests', join(d, 'dataparallel_state_dict.pt')]]) as Digests[];
    expect(Object.keys(got!)).toEqual(['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias', 'head1.weight', 'head1.bias', 'head2.weight', 'head2.bias', 'head3.weight', 'head3.bias']);
  });

  it('rename: API strings and [RegExp | string, string] pairs go to the one parser in core', async () => {
    const d = tmp('rename-api');
    const [r] = await torch.convert(fixturePath('dataparallel_state_dict.pt'), {
      out: d, to: 'safetensors', stripDataParallel: true,
      rename: ['^conv(\\d)\\.=>c$1.', [/^FC(\d)\./i, 'head$1.'], ['head\\.', '$&']],
    });
    expect(r!.error).toBeUndefined();
    const sd = torch.loadSafetensors(r!.outputs[0]!) as Map<string, unknown>;
    expect([...sd.keys()].sort()).toEqual(['c1.bias', 'c1.weight', 'c2.bias', 'c2.weight', 'head1.bias', 'head1.weight', 'head2.bias', 'head2.weight', 'head3.bias', 'head3.weight']);
    // A malformed string is core's E_INVALID_ARGUMENT, before any file is touched.
    await expect(torch.convert(fixturePath('dataparallel_state_dict.pt'), { out: d, rename: 'no-arrow' })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});

describe('sharded checkpoints', () => {
  it('reads an HF index as one state dict and writes sharded outputs with an index', async () => {
    const d = tmp('shard');
    const src = join(d, 'src');
    const [full] = py([['make-sharded', src, 3]]) as Digests[];
    // In: the index is one logical state dict (its shards are not converted on their own).
    const found = torch.discoverInputs(src);
    expect(found).toEqual([join(src, 'pytorch_model.bin.index.json')]);
    const [one] = await torch.convert(src, { out: join(d, 'one') });
    expect(one!.error).toBeUndefined();
    expect(one!.format).toBe('hf-index');
    expect(one!.outputs).toEqual([join(d, 'one', 'model.safetensors')]);
    // Out: shards of at most 2 kB, the Hugging Face way.
    const [many] = await torch.convert(src, { out: join(d, 'many'), shardSize: 2000, verify: true });
    expect(many!.error).toBeUndefined();
    expect(many!.verified).toBe(true);
    const index = many!.outputs[many!.outputs.length - 1]!;
    expect(basename(index)).toBe('model.safetensors.index.json');
    expect(many!.outputs.length).toBeGreaterThan(2);
    expect(basename(many!.outputs[0]!)).toMatch(/^model-00001-of-000\d\d\.safetensors$/);
    const idx = JSON.parse(readFileSync(index, 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(Object.keys(idx.weight_map).sort()).toEqual(Object.keys(full!).sort());
    // Sharded pt out too.
    const [pts] = await torch.convert(src, { out: join(d, 'pt'), to: 'pt', shardSize: '2kB' });
    expect(pts!.error).toBeUndefined();
    const ptIndex = pts!.outputs[pts!.outputs.length - 1]!;
    expect(basename(ptIndex)).toBe('pytorch_model.bin.index.json');
    const [a, b, c] = py([
      ['digests', one!.outputs[0]],
      ['digests', index],
      ['digests', ptIndex],
    ]) as Digests[];
    expect(a).toEqual(full);
    expect(b).toEqual(full);
    expect(c).toEqual(full);
  });
});

describe('batches', () => {
  it('a corrupt file in the middle is reported while the others convert (exit 1); all failing is exit 3', async () => {
    const d = tmp('bad');
    const inDir = join(d, 'in');
    mkdirSync(inDir);
    copyFileSync(SEED(), join(inDir, 'a.pt'));
    writeFileSync(join(inDir, 'b.pt'), readFileSync(SEED()).subarray(0, 5000));
    copyFileSync(SEED(), join(inDir, 'c.pt'));
    const r = await cli('convert', inDir, '--out', join(d, 'out'), '--json');
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.out) as { summary: { failed: number; converted: number; exitCode: number }; reports: torch.ConvertReport[] };
    expect(doc.summary).toMatchObject({ failed: 1, converted: 2, exitCode: 1 });
    expect(doc.reports.map((x) => basename(x.input))).toEqual(['a.pt', 'b.pt', 'c.pt']);
    expect(doc.reports[1]!.error?.code).toBe('E_TRUNCATED');
    expect(doc.reports[0]!.error).toBeUndefined();
    expect(doc.reports[2]!.error).toBeUndefined();
    expect(listFiles(join(d, 'out'))).toEqual(['a.safetensors', 'c.safetensors']);
    const all = await cli('convert', join(inDir, 'b.pt'), '--out', join(d, 'out2'));
    expect(all.code).toBe(3);
    expect(all.err).toContain('FAIL');
    expect(all.err).toContain('E_TRUNCATED');
  });

  it('--skip-existing resumes an interrupted batch and a finished one exits 0 with "N skipped"', async () => {
    const d = tmp('resume');
    const inputs = ['seed_state_dict.pt', 'seed_checkpoint.pt', 'dataparallel_state_dict.pt'].map((f) => {
      copyFileSync(fixturePath(f), join(d, f));
      return join(d, f);
    });
    const out = join(d, 'out');
    // One file done before the "interruption".
    expect((await cli('convert', inputs[0]!, '--out', out)).code).toBe(0);
    const first = readFileSync(join(out, 'seed_state_dict.safetensors'));
    // The plain retry fails that file (the old behaviour, kept without the flag) ...
    const plain = await cli('convert', ...inputs, '--out', out, '--json');
    expect(plain.code).toBe(1);
    // ... and a finished batch re-run without it is "every file failed".
    expect((await cli('convert', ...inputs, '--out', out)).code).toBe(3);
    // The finished batch with --skip-existing: exit 0, every file skipped, outputs untouched.
    const again = await cli('convert', ...inputs, '--out', out, '--skip-existing');
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/; 3 skipped/);
    expect(again.out.split('\n').filter((l) => l.startsWith('skip '))).toHaveLength(3);
    expect(readFileSync(join(out, 'seed_state_dict.safetensors')).equals(first)).toBe(true);
    // The outputs still hold the inputs' tensors for torch (nothing rewritten, nothing torn).
    const [a, b] = py([
      ['digests', inputs[0]],
      ['digests', join(out, 'seed_state_dict.safetensors')],
    ]) as Digests[];
    expect(b).toEqual(a);
    // A resumed batch: one output removed is converted again, the others skipped (--verify:
    // existing outputs read in full); JSON has the statuses and the count.
    const { rmSync } = await import('node:fs');
    rmSync(join(out, 'seed_checkpoint.safetensors'));
    const resumed = await cli('convert', ...inputs, '--out', out, '--skip-existing', '--verify', '--json');
    expect(resumed.code, resumed.err).toBe(0);
    const doc = JSON.parse(resumed.out) as { summary: { skipped: number; converted: number; failed: number }; reports: torch.ConvertReport[] };
    expect(doc.summary).toMatchObject({ skipped: 2, converted: 1, failed: 0 });
    expect(doc.reports.map((r) => [basename(r.input), r.status])).toEqual([
      ['dataparallel_state_dict.pt', 'skipped'],
      ['seed_checkpoint.pt', 'converted'],
      ['seed_state_dict.pt', 'skipped'],
    ]);
    // A damaged output is not taken for done: E_OUTPUT_EXISTS, exit 1, file left as it is.
    writeFileSync(join(out, 'seed_state_dict.safetensors'), first.subarray(0, first.length - 10));
    const damaged = await cli('convert', ...inputs, '--out', out, '--skip-existing', '--json');
    expect(damaged.code).toBe(1);
    const rep = (JSON.parse(damaged.out) as { reports: torch.ConvertReport[] }).reports.find((r) => r.input === inputs[0])!;
    expect(rep.status).toBe('failed');
    expect(rep.error?.code).toBe('E_OUTPUT_EXISTS');
    // The API: skipExisting with force is E_INVALID_ARGUMENT.
    await expect(torch.convert(inputs, { out, skipExisting: true, force: true })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });

  it('--dry-run writes nothing; an existing output needs --force (E_OUTPUT_EXISTS)', async () => {
    const d = tmp('dry');
    const out = join(d, 'out');
    const dry = await cli('convert', SEED(), '--out', out, '--dry-run', '--json');
    expect(dry.code).toBe(0);
    const rep = (JSON.parse(dry.out) as { reports: torch.ConvertReport[] }).reports[0]!;
    expect(rep.outputs).toEqual([join(out, 'seed_state_dict.safetensors')]);
    expect(rep.bytesOut).toBeGreaterThan(0);
    expect(existsSync(out)).toBe(false);
    expect((await cli('convert', SEED(), '--out', out)).code).toBe(0);
    const before = readFileSync(join(out, 'seed_state_dict.safetensors'));
    const again = await cli('convert', SEED(), '--out', out, '--dtype', 'float16', '--json');
    expect(again.code).toBe(3);
    expect((JSON.parse(again.out) as { reports: torch.ConvertReport[] }).reports[0]!.error?.code).toBe('E_OUTPUT_EXISTS');
    expect(readFileSync(join(out, 'seed_state_dict.safetensors')).equals(before)).toBe(true);
    const forced = await cli('convert', SEED(), '--out', out, '--dtype', 'float16', '--force');
    expect(forced.code).toBe(0);
    expect(readFileSync(join(out, 'seed_state_dict.safetensors')).length).toBeLessThan(before.length);
    expect(listFiles(out)).toEqual(['seed_state_dict.safetensors']);
  });

  it('--shard-index/--shard-count partitions are disjoint and cover every input', async () => {
    const dir = join(fixturePath('.'));
    const all = torch.discoverInputs(dir);
    expect(all.length).toBeGreaterThan(20);
    const parts = [0, 1, 2].map((i) => torch.discoverInputs(dir, { shardIndex: i, shardCount: 3 }));
    const seen = parts.flat();
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...all].sort());
    // The CLI splits the same way.
    const r = await cli('convert', dir, '--out', tmp('part'), '--dry-run', '--json', '--shard-index', '1', '--shard-count', '3', '--no-weights-only');
    const inputs = (JSON.parse(r.out) as { reports: torch.ConvertReport[] }).reports.map((x) => x.input);
    expect(inputs).toEqual(parts[1]);
  });

  it('--keep-tree mirrors input folders', async () => {
    const d = tmp('tree');
    mkdirSync(join(d, 'in', 'x', 'y'), { recursive: true });
    copyFileSync(SEED(), join(d, 'in', 'x', 'a.pth'));
    copyFileSync(SEED(), join(d, 'in', 'x', 'y', 'a.pth'));
    const r = await cli('convert', join(d, 'in'), '--out', join(d, 'out'), '--keep-tree');
    expect(r.code, r.err).toBe(0);
    expect(listFiles(join(d, 'out'))).toEqual(['a.safetensors', 'y/a.safetensors']);
  });

  it('--no-durable writes the same bytes, atomically, for every target', async () => {
    const d = tmp('nodurable');
    const inDir = join(d, 'in');
    mkdirSync(inDir);
    copyFileSync(SEED(), join(inDir, 'a.pt'));
    copyFileSync(SEED(), join(inDir, 'b.pt'));
    for (const extra of [[], ['--dtype', 'float16', '--verify'], ['--to', 'pt'], ['--to', 'pt-legacy'], ['--shard-size', '20kB']]) {
      const durable = join(d, `on${extra.join('')}`);
      const fast = join(d, `off${extra.join('')}`);
      const a = await cli('convert', inDir, '--out', durable, '--jobs', '2', ...extra);
      const b = await cli('convert', inDir, '--out', fast, '--jobs', '2', '--no-durable', '--json', ...extra);
      expect(a.code, a.err).toBe(0);
      expect(b.code, b.err).toBe(0);
      expect((JSON.parse(b.out) as { summary: { converted: number } }).summary.converted).toBe(2);
      const files = listFiles(fast);
      expect(files, extra.join(' ')).toEqual(listFiles(durable));
      expect(files.length).toBeGreaterThanOrEqual(2);
      for (const f of files) expect(readFileSync(join(fast, f)).equals(readFileSync(join(durable, f))), f).toBe(true);
    }
    // The API option is the same switch.
    const api = await torch.convert(join(inDir, 'a.pt'), { out: join(d, 'api'), durable: false });
    expect(api[0]!.error).toBeUndefined();
    expect(readFileSync(join(d, 'api', 'a.safetensors')).equals(readFileSync(join(d, 'on', 'a.safetensors')))).toBe(true);
    // Atomic still: a failing input leaves nothing under an output name and no temporary.
    writeFileSync(join(d, 'bad.pt'), readFileSync(SEED()).subarray(0, 5000));
    const bad = await cli('convert', join(d, 'bad.pt'), '--out', join(d, 'badout'), '--no-durable');
    expect(bad.code).toBe(3);
    expect(existsSync(join(d, 'badout')) ? listFiles(join(d, 'badout')) : []).toEqual([]);
    expect((await cli('convert', '--help')).out).toContain('--no-durable');
  });

  it('usage errors exit 2', async () => {
    expect((await cli('convert')).code).toBe(2);
    expect((await cli('convert', SEED(), '--dtype', 'int8')).code).toBe(2);
    expect((await cli('convert', SEED(), '--to', 'onnx')).code).toBe(2);
    expect((await cli('convert', SEED(), '--jobs', '0')).code).toBe(2);
    expect((await cli('convert', SEED(), '--shard-index', '1')).code).toBe(2);
    expect((await cli('convert', SEED(), '--shard-size', 'lots', '--out', tmp('u'))).code).toBe(2);
    expect((await cli('convert', SEED(), '--rename', 'nope')).code).toBe(2);
    expect((await cli('diff', SEED())).code).toBe(2);
    const missing = await cli('convert', join(tmp('m'), 'nope.pt'));
    expect(missing.code).toBe(3);
    expect(missing.err).toMatch(/^E_IO: /);
    await expect(torch.convert(SEED(), { dtype: 'int8' as never })).rejects.toMatchObject({ code: 'E_INVALID_ARGUMENT' });
  });
});

describe('inspect over many files', () => {
  it('summarises a folder: count, formats, dtypes, bytes, unreadable files with codes', async () => {
    const d = tmp('insp');
    copyFileSync(SEED(), join(d, 'a.pt'));
    copyFileSync(fixturePath('dataparallel_state_dict.legacy.pt'), join(d, 'b.pt'));
    writeFileSync(join(d, 'c.pt'), 'not a checkpoint');
    await torch.convert(join(d, 'a.pt'), { out: join(d, 'st'), dtype: 'float16' });
    const s = await torch.inspectMany(d);
    expect(s.count).toBe(3);
    expect(s.formats).toEqual({ legacy: 1, safetensors: 1, zip: 1 });
    expect(s.dtypes.float32!.tensors).toBe(20);
    expect(s.dtypes.float16!.tensors).toBe(10);
    expect(s.dtypes.float16!.bytes * 2).toBe(s.dtypes.float32!.bytes / 2);
    expect(s.errors.map((e) => [basename(e.path), e.code])).toEqual([['c.pt', 'E_UNKNOWN_FORMAT']]);
    const j = await cli('inspect', d, '--json');
    expect(j.code).toBe(1);
    expect((JSON.parse(j.out) as torch.InspectSummary).count).toBe(3);
    const h = await cli('inspect', join(d, 'a.pt'), join(d, 'b.pt'));
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^files: 2 \(legacy 1, zip 1\)/);
    // One file keeps the per-file output.
    const one = await cli('inspect', join(d, 'a.pt'));
    expect(one.out.split('\n')[0]).toBe('conv1.weight \t torch.Size([6, 3, 5, 5])');
  });
});

describe('progress bar', () => {
  it('shows files, bytes, rate and ETA, and only on a terminal without --json', async () => {
    let t = 0;
    let drawn = '';
    const bar = new ProgressBar((s) => (drawn += s), 4, 100, () => t);
    bar.started(4, 'a.pt');
    t = 2000;
    bar.finishedFile(4, 1, 50_000_000);
    expect(bar.line()).toBe('[====>               ] 1/4 files  50.0 MB  25.0 MB/s  ETA 0:06  a.pt');
    bar.finish();
    expect(drawn.endsWith('\r\x1b[K')).toBe(true);
    const run = async (tty: boolean, ...extra: string[]): Promise<string> => {
      let err = '';
      await runCli(['convert', SEED(), '--out', tmp('bar'), ...extra], { stdout: () => {}, stderr: (s) => (err += s), stderrIsTTY: tty });
      return err;
    };
    expect(await run(true)).toContain('1/1 files');
    expect(await run(false)).toBe('');
    expect(await run(true, '--json')).toBe('');
    expect(await run(true, '--no-progress')).toBe('');
  });
});
