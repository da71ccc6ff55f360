"""Python side of __test__/convert*.test.ts: real torch and the real `safetensors` package.

Usage: check.py '<json list of calls>'; prints a JSON list of results, one per call.
Calls (each a list, first item the command):
  ["digests", PATH]        -> {key: [dtype, shape, sha256 of the contiguous bytes]} of what
                              torch.load (.pt/.pth/.bin), safetensors.torch.load_file
                              (.safetensors) or transformers-style index merging
                              (*.index.json) gives; checkpoints are flattened "a/b" like
                              torchsave's tensor paths.
  ["strict", PATH]         -> loads PATH (as above) into the seed's TheModelClass with
                              load_state_dict(strict=True); {"ok": true} or an exception.
  ["make-sharded", DIR, N] -> writes an HF-style sharded torch checkpoint of a small model
                              (pytorch_model-0000i-of-0000N.bin + pytorch_model.bin.index.json)
                              and returns the digests of the full state dict.
  ["make-batch", DIR, COUNT, FLOATS] -> COUNT state dicts of FLOATS float32 each, b000.pt...
"""
import hashlib
import json
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from fixture_classes import TheModelClass  # noqa: E402


def sha(t):
    t = t.detach().contiguous().reshape(-1)
    return hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()


def flatten(obj, prefix, out):
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}/{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}/{i}" if prefix else str(i), out)
    return out


def load_any(path):
    if path.endswith(".index.json"):
        with open(path) as f:
            idx = json.load(f)
        sd = {}
        base = os.path.dirname(path)
        for shard in sorted(set(idx["weight_map"].values())):
            p = os.path.join(base, shard)
            part = load_file(p) if shard.endswith(".safetensors") else torch.load(p, weights_only=True)
            sd.update(part)
        return sd
    if path.endswith(".safetensors"):
        return load_file(path)
    return torch.load(path, weights_only=True, map_location="cpu")


def digests(path):
    flat = flatten(load_any(path), "", {})
    return {k: [str(t.dtype).replace("torch.", ""), list(t.shape), sha(t)] for k, t in flat.items()}


def strict(path):
    m = TheModelClass()
    m.load_state_dict(load_any(path), strict=True)
    return {"ok": True}


def make_sharded(d, n):
    torch.manual_seed(0)
    m = torch.nn.Sequential(*[torch.nn.Linear(16, 16) for _ in range(2 * n)])
    sd = m.state_dict()
    keys = list(sd)
    per = (len(keys) + n - 1) // n
    weight_map = {}
    total = 0
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        name = f"pytorch_model-{i + 1:05d}-of-{n:05d}.bin"
        part = {k: sd[k] for k in keys[i * per:(i + 1) * per]}
        torch.save(part, os.path.join(d, name))
        for k, t in part.items():
            weight_map[k] = name
            total += t.numel() * t.element_size()
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return {k: [str(t.dtype).replace("torch.", ""), list(t.shape), sha(t)] for k, t in sd.items()}


def make_batch(d, count, floats):
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    names = []
    for i in range(count):
        name = os.path.join(d, f"b{i:03d}.pt")
        torch.save({"w": torch.randn(floats, generator=g), "b": torch.arange(8)}, name)
        names.append(name)
    return names


def main():
    calls = json.loads(sys.argv[1])
    out = []
    for c in calls:
        cmd, args = c[0], c[1:]
        if cmd == "digests":
            out.append(digests(*args))
        elif cmd == "strict":
            out.append(strict(*args))
        elif cmd == "make-sharded":
            out.append(make_sharded(*args))
        elif cmd == "make-batch":
            out.append(make_batch(*args))
        else:
            raise SystemExit(f"unknown call {cmd}")
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
