/**
 * A file loaded with the default options (mmap) that another process truncates, cuts in
 * half, overwrites in place or replaces must never kill the Node process (it used to die of
 * SIGBUS, exit 135). Each case runs in a child Node that must exit 0 and print what it saw:
 * values read through the typed arrays it already held (every page), and the code of each
 * library call (tolist, torch.save of the loaded dict, loadStateDict copy). The outcomes are
 * the ones the README's "When a loaded file changes on disk" section documents.
 * `torch.load(mmap=True)` is run the same way, to check the claim that it dies of SIGBUS.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pythonPath, REPO_ROOT } from './helpers/python';

const tmp = mkdtempSync(join(tmpdir(), 'torchsave-mapped-'));
const DIST = join(REPO_ROOT, 'dist', 'index.js');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Outcome {
  /** Elements whose value is neither the old one (byte before the cut) nor 0 (after it). */
  mismatches: number;
  zeros: number;
  old: number;
  n: number;
  tolist: string;
  save: string;
  loadStateDict: string;
  /** tolist equals the values before the change. */
  tolistOld?: boolean;
  /** the re-save holds the old values (loaded back). */
  savedOld?: boolean;
}

/**
 * The child: saves a 256x256 Linear's state dict (256 KiB of float32, 64 pages), loads it,
 * takes the weight's typed array, applies `change`, then reads every element and calls the
 * library. `cut` is the file length after the change when bytes before it keep their values.
 */
const CHILD = String.raw`
const torch = require(process.env.DIST);
const fs = require('fs');
const { execFileSync } = require('child_process');
const [file, kind, mmapArg] = process.argv.slice(1);
const lin = new torch.nn.Linear(256, 256);
const n = 256 * 256;
const w0 = new Float32Array(n);
for (let i = 0; i < n; i++) w0[i] = 1 + (i % 97);
lin.weight.typedArray().set(w0);
torch.save(lin.stateDict(), file);
const sd = torch.load(file, { mmap: mmapArg === 'mmap' });
const arr = sd.get('weight').typedArray(); // held by the user across the change
const size = fs.statSync(file).size;
// The weight's bytes start at this offset of the file (its storage views the file's map).
const base = arr.byteOffset;
let cut = Infinity;
let fresh = false; // the bytes before the cut are a new file's, not the old values
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
sleep(30); // file-system timestamps are coarse: let the clock move before a change
if (kind === 'truncate0') { fs.truncateSync(file, 0); cut = 0; }
else if (kind === 'half') { cut = Math.floor(size / 2); fs.truncateSync(file, cut); }
else if (kind === 'overwrite') { const fd = fs.openSync(file, 'r+'); fs.writeSync(fd, Buffer.alloc(size)); fs.closeSync(fd); cut = 0; }
else if (kind === 'replace') {
  const other = file + '.new';
  torch.save(new Map([['x', torch.zeros([10])]]), other);
  fs.renameSync(other, file);
} else if (kind === 'torch-resave') {
  execFileSync(process.env.PY, ['-c', 'import sys, torch; torch.save({"x": torch.zeros(10)}, sys.argv[1])', file]);
  // The new, smaller file: bytes before its end are its own, every byte after it reads 0.
  cut = fs.statSync(file).size; fresh = true;
} else if (kind === 'rewrite') {
  // Truncate then rewrite the same length (a writer that truncates, then writes new bytes).
  fs.truncateSync(file, 0); fs.writeFileSync(file, Buffer.alloc(size, 0)); cut = 0;
}
let mismatches = 0, zeros = 0, old = 0;
for (let i = 0; i < n; i++) {
  const v = arr[i]; // every page of the storage, through the typed array
  if (v === 0) zeros++;
  if (v === w0[i]) old++;
  const off = base + i * 4;
  if (off < cut && (fresh || off + 4 > cut)) continue; // a new file's bytes, or straddling the cut
  if (v !== (off + 4 <= cut ? w0[i] : 0)) mismatches++;
}
const code = (f) => { try { f(); return 'ok'; } catch (e) { return e.code || String(e); } };
const out = { mismatches, zeros, old, n };
out.tolist = code(() => { const l = sd.get('weight').tolist(); out.tolistOld = l.flat().every((x, i) => x === w0[i]); });
out.save = code(() => {
  const back = torch.load(torch.save(sd, null));
  out.savedOld = Array.from(back.get('weight').typedArray()).every((x, i) => x === w0[i]);
});
out.loadStateDict = code(() => new torch.nn.Linear(256, 256).loadStateDict(sd));
console.log(JSON.stringify(out));
`;

function child(kind: string, mmap = true): { status: number | null; signal: string | null; out: Outcome | undefined; text: string } {
  const file = join(tmp, `${kind}-${mmap ? 'mmap' : 'eager'}.pt`);
  const r = spawnSync('node', ['-e', CHILD, file, kind, mmap ? 'mmap' : 'eager'], {
    env: { ...process.env, DIST, PY: pythonPath() },
    encoding: 'utf8',
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out: Outcome | undefined;
  try {
    out = JSON.parse(line) as Outcome;
  } catch {
    out = undefined;
  }
  return { status: r.status, signal: r.signal, out, text: `${r.stdout}${r.stderr}` };
}

describe('a mapped checkpoint changed by another process', () => {
  it.each([
    // [case, zeros expected: 'all' | 'most' (a new small file covers the first bytes) | 'some' (the first half keeps its values)]
    ['truncate0', 'all'],
    ['half', 'some'],
    ['torch-resave', 'most'],
    ['rewrite', 'all'],
  ])('%s: the process survives, lost bytes read as zeros, every library call throws E_FILE_CHANGED', (kind, zeros) => {
    const r = child(kind);
    expect({ status: r.status, signal: r.signal }, r.text).toEqual({ status: 0, signal: null });
    const o = r.out!;
    expect(o.mismatches).toBe(0);
    if (zeros === 'all') expect(o.zeros).toBe(o.n);
    else if (zeros === 'most') expect(o.zeros).toBeGreaterThan(o.n * 0.9);
    else expect(o.zeros > 0 && o.old > 0).toBe(true);
    expect([o.tolist, o.save, o.loadStateDict]).toEqual(['E_FILE_CHANGED', 'E_FILE_CHANGED', 'E_FILE_CHANGED']);
  });

  it('overwrite in place (same size): the held arrays show the new bytes, library calls throw E_FILE_CHANGED', () => {
    const r = child('overwrite');
    expect({ status: r.status, signal: r.signal }, r.text).toEqual({ status: 0, signal: null });
    const o = r.out!;
    expect(o.zeros).toBe(o.n); // MAP_PRIVATE does not protect pages never written
    expect([o.tolist, o.save, o.loadStateDict]).toEqual(['E_FILE_CHANGED', 'E_FILE_CHANGED', 'E_FILE_CHANGED']);
  });

  it('delete-and-replace (atomic rename): the old mapping stays valid, every call gives the old values', () => {
    const r = child('replace');
    expect({ status: r.status, signal: r.signal }, r.text).toEqual({ status: 0, signal: null });
    const o = r.out!;
    expect(o.old).toBe(o.n);
    expect([o.tolist, o.save, o.loadStateDict]).toEqual(['ok', 'ok', 'ok']);
    expect(o.tolistOld && o.savedOld).toBe(true);
  });

  it('mmap: false is independent of the file: old values everywhere, no error', () => {
    const r = child('truncate0', false);
    expect({ status: r.status, signal: r.signal }, r.text).toEqual({ status: 0, signal: null });
    const o = r.out!;
    expect(o.old).toBe(o.n);
    expect([o.tolist, o.save, o.loadStateDict]).toEqual(['ok', 'ok', 'ok']);
  });

  it('a SIGBUS that is not a fault in our mappings still gets the default action (the handler chains)', () => {
    const script = `const torch = require(process.env.DIST); const f = process.argv[1];
      torch.save(new Map([['w', torch.zeros([1000])]]), f); const sd = torch.load(f);
      sd.get('w').tolist(); process.kill(process.pid, 'SIGBUS'); setTimeout(() => console.log('survived'), 500);`;
    const r = spawnSync('node', ['-e', script, join(tmp, 'chain.pt')], { env: { ...process.env, DIST }, encoding: 'utf8' });
    expect({ signal: r.signal, out: r.stdout.trim() }).toEqual({ signal: 'SIGBUS', out: '' });
  });

  it('torch.load(mmap=True) in Python dies of SIGBUS on the same truncation (the README claim)', () => {
    const file = join(tmp, 'py.pt');
    const script = [
      'import os, sys, torch',
      'p = sys.argv[1]',
      'torch.save({"w": torch.arange(65536, dtype=torch.float32) + 1}, p)',
      'sd = torch.load(p, mmap=True, weights_only=True)',
      'os.truncate(p, 0)',
      'print(float(sd["w"].sum()), flush=True)',
    ].join('\n');
    const r = spawnSync(pythonPath(), ['-c', script, file], { encoding: 'utf8' });
    expect(r.signal, `${r.stdout}${r.stderr}`).toBe('SIGBUS');
  });
});
