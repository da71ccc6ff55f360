"""Oracle for the pickle-protocol tests (__test__/save.test.ts).

  make DIR        torch.save each case with pickle_protocol 3, 4 and 5 into DIR/<case>_p<N>/<case>.pt
  compare A B     every zip record of A and B byte for byte, but the serialization id; then
                  torch.load(B, weights_only=False) must equal torch.load(A, weights_only=False)

Prints one JSON line.
"""

import argparse
import collections
import json
import os
import sys
import zipfile

import torch


def cases():
    torch.manual_seed(0)
    # Many small tensors: data.pkl well past several 64 KiB frames.
    big = collections.OrderedDict()
    for i in range(2500):
        big[f"layers.{i}.weight"] = torch.full((2,), float(i))
    big._metadata = collections.OrderedDict((f"layers.{i}", {"version": 1}) for i in range(0, 2500, 7))

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()

    misc = {
        "epoch": 7,
        "loss": 0.25,
        "big_int": 2**70,
        "none": None,
        "flags": (True, False),
        "tuple": (1, "a", 2.5, (3,), ()),
        "set": {1, 2, 3},
        "frozenset": frozenset({"x", "y"}),
        "bytes": b"abc" * 10,
        "bytes_big": b"\x01" * 70000,
        "str_big": "s" * 70000,
        "str_unicode": "h\u00e9llo \u4e16\u754c",
        "bytearray": bytearray(b"xyz"),
        "bytearray_big": bytearray(b"\x02" * 70000),
        "complex": complex(1.5, -2.0),
        "dtype": torch.float16,
        "device": torch.device("cuda", 0),
        "size": torch.Size([2, 3]),
        "ns": argparse.Namespace(lr=0.1, name="run"),
        "nested": [{"a": [1, 2, {"b": (4, 5)}]}, [[], {}]],
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "view": torch.arange(12.0).view(3, 4)[1:, ::2],
    }
    return {"big_state_dict": big, "misc": misc}


def make(out):
    names = []
    for name, obj in cases().items():
        for p in (3, 4, 5):
            d = os.path.join(out, f"{name}_p{p}")
            os.makedirs(d, exist_ok=True)
            torch.save(obj, os.path.join(d, f"{name}.pt"), pickle_protocol=p)
            names.append([name, p, os.path.join(d, f"{name}.pt")])
    return {"files": names}


def records(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename.split("/", 1)[1]: z.read(i) for i in z.infolist()}


def equal(a, b):
    if isinstance(a, torch.Tensor):
        return (
            isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.stride() == b.stride()
            and a.storage_offset() == b.storage_offset()
            and torch.equal(a, b)
        )
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, argparse.Namespace):
        return vars(a) == vars(b)
    return type(a) is type(b) and a == b


def compare(a, b):
    ra, rb = records(a), records(b)
    diff = []
    for k in sorted(set(ra) | set(rb)):
        if k == ".data/serialization_id":
            continue
        x, y = ra.get(k), rb.get(k)
        if x != y:
            at = None
            if x is not None and y is not None:
                at = next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            diff.append({"record": k, "at": at, "torch": len(x or b""), "ours": len(y or b"")})
    va = torch.load(a, weights_only=False)
    vb = torch.load(b, weights_only=False)
    return {"records": len(ra), "diff": diff[:5], "equal": equal(va, vb)}


def main(argv):
    if argv[0] == "make":
        r = make(argv[1])
    elif argv[0] == "compare":
        r = compare(argv[1], argv[2])
    else:
        raise SystemExit(f"unknown command {argv[0]}")
    print(json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:])
