"""Loads a checkpoint with torch 2.11 and prints a canonical JSON description of it.

Usage: python check_load.py WEIGHTS_ONLY(0|1) exact|compact FILE...  (one JSON line per file)

Tensors are described by class, dtype, shape, stride, storage offset, requires_grad,
conj bit, Python attributes and a SHA-256 of their values (C-order, contiguous); containers
by type and contents. The Rust tests compare the description of our file with that of
torch's own file for the same object, so equal output means torch sees equal values.
"""
import collections
import hashlib
import json
import sys
import warnings

import torch

warnings.filterwarnings("ignore")


def tensor_digest(t):
    t = t.detach().cpu()
    if t.is_conj():
        t = t.resolve_conj()
    t = t.contiguous().reshape(-1)
    if t.dtype in (torch.complex32,):
        t = t.to(torch.complex64)
    raw = t.view(torch.uint8) if t.numel() and t.dtype != torch.bool else t.to(torch.uint8)
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


COMPACT = False


def describe(o, seen):
    if id(o) in seen and not isinstance(o, (int, float, str, bool, type(None), bytes)):
        return {"ref": seen[id(o)]}
    if isinstance(o, (list, dict, tuple, set, frozenset, torch.Tensor, bytearray)):
        seen[id(o)] = len(seen)
    if isinstance(o, torch.Tensor):
        d = {
            "class": type(o).__name__,
            "dtype": str(o.dtype),
            "shape": list(o.shape),
            "stride": None if COMPACT else list(o.stride()),
            "offset": None if COMPACT else o.storage_offset(),
            "requires_grad": o.requires_grad,
            "conj": bool(o.is_conj()),
            "sha256": tensor_digest(o),
            "attrs": describe(o.__dict__, seen) if o.__dict__ else None,
        }
        return d
    if isinstance(o, collections.OrderedDict):
        return {"OrderedDict": [[describe(k, seen), describe(v, seen)] for k, v in o.items()],
                "state": describe(o.__dict__, seen) if o.__dict__ else None}
    if isinstance(o, dict):
        return {"dict": [[describe(k, seen), describe(v, seen)] for k, v in o.items()]}
    if isinstance(o, (list, tuple)):
        return {type(o).__name__: [describe(v, seen) for v in o]}
    if isinstance(o, (set, frozenset)):
        return {type(o).__name__: sorted(repr(v) for v in o)}
    if isinstance(o, (bytes, bytearray)):
        return {type(o).__name__: o.hex()}
    if isinstance(o, float):
        return {"float": o.hex()}
    if isinstance(o, complex):
        return {"complex": [o.real.hex(), o.imag.hex()]}
    if isinstance(o, (int, str, bool)) or o is None:
        return o if not isinstance(o, int) or isinstance(o, bool) or abs(o) < 2**53 else {"int": str(o)}
    if isinstance(o, torch.nn.Module):
        return {"module": type(o).__name__, "state": describe(o.state_dict(), seen), "repr": repr(o)}
    return {"other": type(o).__name__, "repr": repr(o)}


def main():
    global COMPACT
    wo = sys.argv[1] == "1"
    # "compact": our compacted copy changes strides/offsets on purpose; compare values only.
    COMPACT = sys.argv[2] == "compact"
    for path in sys.argv[3:]:
        obj = torch.load(path, weights_only=wo)
        print(json.dumps(describe(obj, {}), sort_keys=True))


if __name__ == "__main__":
    main()
