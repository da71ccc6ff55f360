/**
 * The CPU casts of ts/dtype.ts (float16/bfloat16 encode and decode) equal, bit for bit, the
 * core's (crate/core `cast_buffer`, through the binding's `_castFloats` test hook) and real
 * torch 2.11's (one python call for every case): special values, subnormals, ties, random
 * bits and NaNs with payloads and signs. Inputs are padded to a multiple of 64 elements so
 * every value sits in torch's vectorised loop body (its scalar tail writes other NaN bits).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from '../ts/dtype';
import { pythonPath } from './helpers/python';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('../native/bindings.js') as {
  _castFloats(bytes: Uint8Array, from: string, to: string): Buffer;
};

function pad64(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** float32 bit patterns: specials, ties, subnormals, NaN payloads, random bits. */
function f32Inputs(): Uint32Array {
  const bits: number[] = [];
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const vals = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e-8, 6e-8, 5.96e-8, 1e-40, 3.4e38, -3.4e38, Infinity, -Infinity,
    1.0009765625, 1.00048828125, 1.000732421875, 1.00390625, 1.005859375, 2 ** -24, 2 ** -25, 3 * 2 ** -26,
    1 + 2 ** -8, 1 + 3 * 2 ** -9, 2 ** -14, 2 ** -15, 2 ** -126, 2 ** -149];
  for (const v of vals) {
    f[0] = v;
    bits.push(u[0]!);
  }
  bits.push(0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa12345, 0xff812345, 0x7fffffff, 0xffffffff, 0x7fc02000, 0x7fe00001);
  // bfloat16/float16 rounding ties and their neighbours: low bits exactly half, half +- 1.
  for (const hi of [0x3f80, 0x3f81, 0x4000, 0x4001, 0x477f, 0x0001, 0x8001]) {
    for (const lo of [0x7fff, 0x8000, 0x8001, 0x0fff, 0x1000, 0x1001, 0x3000, 0x2000]) bits.push(((hi << 16) | lo) >>> 0);
  }
  let s = 0x12345678;
  for (let i = 0; i < 20000; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    bits.push(s >>> 0);
  }
  const out = new Uint32Array(pad64(bits.length));
  out.set(bits);
  return out;
}

/** Every 16-bit pattern. */
function all16(): Uint16Array {
  const a = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) a[i] = i;
  return a;
}

interface TorchCasts {
  f32ToF16: Uint16Array;
  f32ToBf16: Uint16Array;
  f16ToF32: Uint32Array;
  bf16ToF32: Uint32Array;
  f16ToF64: BigUint64Array;
  bf16ToF64: BigUint64Array;
}

/** torch 2.11's casts of all three inputs, in one python call. */
function torchCasts(f32: Uint32Array, h16: Uint16Array): TorchCasts {
  const dir = mkdtempSync(join(tmpdir(), 'torchsave-casts-'));
  writeFileSync(join(dir, 'f32.bin'), new Uint8Array(f32.buffer));
  writeFileSync(join(dir, 'h16.bin'), new Uint8Array(h16.buffer));
  const script = `
import sys, os, numpy as np, torch
assert torch.__version__.startswith("2.11"), torch.__version__
d = sys.argv[1]
f32 = torch.from_numpy(np.fromfile(os.path.join(d, "f32.bin"), dtype="<u4").view("<f4").copy())
h = torch.from_numpy(np.fromfile(os.path.join(d, "h16.bin"), dtype="<u2").view("<i2").copy())
f16 = h.view(torch.float16)
bf16 = h.view(torch.bfloat16)
out = {
  "f32ToF16": f32.to(torch.float16).view(torch.int16),
  "f32ToBf16": f32.to(torch.bfloat16).view(torch.int16),
  "f16ToF32": f16.to(torch.float32).view(torch.int32),
  "bf16ToF32": bf16.to(torch.float32).view(torch.int32),
  "f16ToF64": f16.to(torch.float64).view(torch.int64),
  "bf16ToF64": bf16.to(torch.float64).view(torch.int64),
}
for k, v in out.items():
  v.numpy().tofile(os.path.join(d, k + ".bin"))
`;
  const r = spawnSync(pythonPath(), ['-c', script, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`torch casts failed: ${r.stderr}`);
  const read = (k: string) => {
    const b = readFileSync(join(dir, `${k}.bin`));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  };
  return {
    f32ToF16: new Uint16Array(read('f32ToF16')),
    f32ToBf16: new Uint16Array(read('f32ToBf16')),
    f16ToF32: new Uint32Array(read('f16ToF32')),
    bf16ToF32: new Uint32Array(read('bf16ToF32')),
    f16ToF64: new BigUint64Array(read('f16ToF64')),
    bf16ToF64: new BigUint64Array(read('bf16ToF64')),
  };
}

function core(src: ArrayBufferView, from: string, to: string): ArrayBuffer {
  const out = binding._castFloats(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), from, to);
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer;
}

/** Indices where two arrays differ (first few), as hex pairs, for readable failures. */
function diffs(name: string, input: ArrayLike<number>, got: ArrayLike<number | bigint>, want: ArrayLike<number | bigint>): string[] {
  const out: string[] = [];
  for (let i = 0; i < want.length && out.length < 8; i++) {
    if (got[i] !== want[i]) out.push(`${name}[${i}] in=${input[i]!.toString(16)} got=${got[i]!.toString(16)} want=${want[i]!.toString(16)}`);
  }
  return out;
}

describe('float16/bfloat16 casts: ts/dtype.ts == core == torch 2.11, bit for bit', () => {
  const f32 = f32Inputs();
  const f32v = new Float32Array(f32.buffer);
  const h16 = all16();
  const torch = torchCasts(f32, h16);

  it('float32 -> float16', () => {
    const ts = Uint16Array.from(f32v, (v) => floatToHalf(v));
    const c = new Uint16Array(core(f32, 'float32', 'float16'));
    expect(diffs('core', f32, c, torch.f32ToF16)).toEqual([]);
    expect(diffs('ts', f32, ts, torch.f32ToF16)).toEqual([]);
  });

  it('float32 -> bfloat16 (every NaN becomes 0xFFFF, as torch writes it)', () => {
    const ts = Uint16Array.from(f32v, (v) => floatToBf16(v));
    const c = new Uint16Array(core(f32, 'float32', 'bfloat16'));
    expect(diffs('core', f32, c, torch.f32ToBf16)).toEqual([]);
    expect(diffs('ts', f32, ts, torch.f32ToBf16)).toEqual([]);
  });

  it('float16 -> float32 and float64 (NaN payloads kept)', () => {
    const ts32 = new Uint32Array(Float32Array.from(h16, (h) => halfToFloat(h)).buffer);
    const ts64 = new BigUint64Array(Float64Array.from(h16, (h) => halfToFloat(h)).buffer);
    const c32 = new Uint32Array(core(h16, 'float16', 'float32'));
    const c64 = new BigUint64Array(core(h16, 'float16', 'float64'));
    expect(diffs('core32', h16, c32, torch.f16ToF32)).toEqual([]);
    expect(diffs('core64', h16, c64, torch.f16ToF64)).toEqual([]);
    expect(diffs('ts32', h16, ts32, torch.f16ToF32)).toEqual([]);
    expect(diffs('ts64', h16, ts64, torch.f16ToF64)).toEqual([]);
  });

  it('bfloat16 -> float64 (the JS number bf16ToFloat returns) and core\'s bfloat16 -> float32', () => {
    const ts64 = new BigUint64Array(Float64Array.from(h16, (h) => bf16ToFloat(h)).buffer);
    const c32 = new Uint32Array(core(h16, 'bfloat16', 'float32'));
    const c64 = new BigUint64Array(core(h16, 'bfloat16', 'float64'));
    expect(diffs('core32', h16, c32, torch.bf16ToF32)).toEqual([]);
    expect(diffs('core64', h16, c64, torch.bf16ToF64)).toEqual([]);
    expect(diffs('ts64', h16, ts64, torch.bf16ToF64)).toEqual([]);
  });
});
