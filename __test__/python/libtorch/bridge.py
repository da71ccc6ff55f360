"""Oracle for __test__/libtorch-bridge.test.ts.

usage:
  bridge.py make OUT.pt   {"casts": {dtype name: [src, src.to(dtype)]}}: src is a float32
                          [3, 5] with float16 rounding, overflow and underflow cases, clamped
                          to the integer dtype's range (out-of-range float->int is undefined
                          in C++), and a float64 source for float64->float32
  bridge.py check PATH    loads Node's file of views of one libtorch result with
                          torch.load(weights_only=True) and prints JSON: how many storage
                          records the zip holds, whether the views share one storage in torch,
                          and their values.
"""
import json
import sys
import zipfile

import torch

torch.set_num_threads(1)


def make(out):
    torch.manual_seed(3)
    x = torch.randn(3, 5) * 300
    x[0, 0] = 0.5  # integer casts truncate toward zero
    x[0, 1] = -2.5
    x[0, 2] = 65519.0  # float16: rounds to 65504
    x[0, 3] = 1e-8  # float16: underflows to 0
    x[0, 4] = 0.0  # bool: False
    casts = {}
    for n in ["float64", "float16", "bfloat16", "int32", "int64", "bool"]:
        casts[n] = [x, x.to(getattr(torch, n))]
    for n, lo, hi in [("int16", -32768, 32767), ("int8", -128, 127), ("uint8", 0, 255)]:
        src = x.clamp(lo, hi)
        casts[n] = [src, src.to(getattr(torch, n))]
    d = torch.randn(3, 5, dtype=torch.float64) * 1e3
    casts["float32"] = [d, d.float()]
    torch.save({"casts": casts}, out)
    print(json.dumps({"ok": True}))


def check(path):
    with zipfile.ZipFile(path) as z:
        records = sorted(n.split("/data/")[1] for n in z.namelist() if "/data/" in n and not n.endswith(".pkl"))
    d = torch.load(path, weights_only=True)
    ptrs = {k: v.untyped_storage().data_ptr() for k, v in d.items() if isinstance(v, torch.Tensor)}
    print(
        json.dumps(
            {
                "records": records,
                "one_storage": len(set(ptrs.values())) == 1,
                "values": {k: v.tolist() for k, v in d.items()},
                "strides": {k: list(v.stride()) for k, v in d.items()},
                "offsets": {k: v.storage_offset() for k, v in d.items()},
            }
        )
    )


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
