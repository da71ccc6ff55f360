"""Oracle for the safetensors / convert tests: real torch + safetensors on one side.

Pinned: torch==2.11.0, safetensors==0.8.0 (the project venv). Seeds are fixed.

    python st_oracle.py write DIR   # files written by safetensors.torch, with sidecars
    python st_oracle.py check DIR   # every DIR/*.safetensors that has a sidecar
                                    # DIR/<name>.expect.json is loaded with
                                    # safetensors.torch.load_file and compared
    python st_oracle.py views DIR   # every DIR/*.safetensors with a DIR/<name>.views.json
                                    # (written by the Rust tests) is checked against torch
                                    # rebuilding each tensor with as_strided
    python st_oracle.py casts DIR   # DIR/casts.safetensors: inputs and torch's casts
    python st_oracle.py pyjson FILE # FILE's JSON as transformers writes index files
    python st_oracle.py pt DIR      # torch.save fixtures (state dict, DataParallel checkpoint)
    python st_oracle.py ptcheck F   # torch.load(F, weights_only=True) as a sidecar on stdout

Sidecar (`<name>.expect.json`): {"tensors": [{"name", "dtype", "shape", "sha256"}...] in
file order, "metadata": {...} or null, "resave_identical": bool}. `sha256` is over the
values as a contiguous little-endian buffer (ARCHITECTURE.md's inspect rule).
`resave_identical`: re-saving the loaded dict with `save_file` must give the same bytes.
Exits non-zero with a message on the first mismatch.
"""

import hashlib
import json
import os
import struct
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file, save_model

assert torch.__version__.startswith("2.11"), torch.__version__


def digest(t: torch.Tensor) -> str:
    t = t.contiguous()
    if t.numel() == 0:
        return hashlib.sha256(b"").hexdigest()
    raw = t.view(-1).view(torch.uint8) if t.element_size() > 0 else t
    return hashlib.sha256(raw.numpy().tobytes()).hexdigest()


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def describe(path):
    with safe_open(path, "pt") as f:
        md = f.metadata()
    d = load_file(path)
    return {
        "tensors": [
            {"name": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape), "sha256": digest(v)}
            for k, v in d.items()
        ],
        "metadata": md,
    }


def write(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    # 1. many dtypes, names out of order, a 0-d and an empty tensor.
    d = {
        "z.weight": torch.randn(3, 4, generator=g),
        "a.bias": torch.randn(5, generator=g, dtype=torch.float64),
        "half": torch.randn(2, 3, generator=g).half(),
        "bf": torch.randn(7, generator=g).bfloat16(),
        "ints": torch.arange(-6, 6, dtype=torch.int64).reshape(3, 4),
        "i32": torch.arange(10, dtype=torch.int32),
        "i16": torch.arange(-3, 3, dtype=torch.int16),
        "i8": torch.arange(-4, 4, dtype=torch.int8),
        "u8": torch.arange(0, 250, 50, dtype=torch.uint8),
        "u16": torch.tensor([0, 1, 65535], dtype=torch.int32).to(torch.uint16),
        "u32": torch.tensor([0, 7, 4294967295], dtype=torch.int64).to(torch.uint32),
        "u64": torch.tensor([0, 9, 2**62], dtype=torch.int64).to(torch.uint64),
        "mask": torch.tensor([True, False, True]),
        "f8a": torch.randn(4, generator=g).to(torch.float8_e4m3fn),
        "f8b": torch.randn(4, generator=g).to(torch.float8_e5m2),
        "c64": torch.randn(3, generator=g, dtype=torch.complex64),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    }
    save_file(d, os.path.join(out, "dtypes.safetensors"), metadata={"format": "pt"})
    # 2. tied weights saved through save_model (drops the alias into metadata).
    m = torch.nn.Sequential(torch.nn.Embedding(6, 4), torch.nn.Linear(4, 6, bias=False))
    m[1].weight = m[0].weight
    save_model(m, os.path.join(out, "tied.safetensors"))
    # 3. no metadata at all, one tensor.
    save_file({"only": torch.ones(2, 2)}, os.path.join(out, "plain.safetensors"))
    # 4. a sharded checkpoint laid out like transformers' save_pretrained: shards listed out
    #    of order in the index, merged-order expectation computed the way transformers loads.
    sh = os.path.join(out, "sharded")
    os.makedirs(sh, exist_ok=True)
    parts = {
        "model-00002-of-00002.safetensors": {"b.weight": torch.randn(4, 4, generator=g), "a.bias": torch.randn(4, generator=g)},
        "model-00001-of-00002.safetensors": {"z.weight": torch.randn(2, 8, generator=g), "c.idx": torch.arange(3)},
    }
    weight_map = {}
    for fname, part in parts.items():
        save_file(part, os.path.join(sh, fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    total = sum(t.numel() * t.element_size() for p_ in parts.values() for t in p_.values())
    with open(os.path.join(sh, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n")
    merged = {}
    for fname in sorted(set(weight_map.values())):
        merged.update(load_file(os.path.join(sh, fname)))
    with open(os.path.join(sh, "expect.json"), "w") as f:
        json.dump({"tensors": [{"name": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                                "sha256": digest(v)} for k, v in merged.items()]}, f)
    for name in ["dtypes", "tied", "plain"]:
        p = os.path.join(out, name + ".safetensors")
        with open(os.path.join(out, name + ".expect.json"), "w") as f:
            json.dump(describe(p), f)


def pt(out):
    """torch.save fixtures for convert_e2e.rs, each with a sidecar of the state dict the
    conversion must produce: <name>.expect.json as in `write` (names in order)."""
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    for p_ in net.parameters():
        p_.data = torch.randn(p_.shape, generator=g)
    sd = net.state_dict()
    torch.save(sd, os.path.join(out, "sd.pt"))
    # state_dict() shares memory with the live module: describe it now, before training.
    with open(os.path.join(out, "sd.expect.json"), "w") as f:
        json.dump({"tensors": [{"name": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                                "sha256": digest(v)} for k, v in sd.items()]}, f)
    # A training checkpoint from a DataParallel model, with optimizer state.
    dp = torch.nn.DataParallel(net)
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(5, 3, generator=g)).sum().backward()
    opt.step()
    torch.save({"epoch": 3, "model_state_dict": dp.state_dict(), "optimizer_state_dict": opt.state_dict()},
               os.path.join(out, "ckpt.pth"))
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    with open(os.path.join(out, "ckpt.expect.json"), "w") as f:
        json.dump({"tensors": [{"name": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                                "sha256": digest(v)} for k, v in half.items()]}, f)


def ptcheck(path):
    """Loads a .pt we wrote with torch.load(weights_only=True); prints its state dict as the
    sidecar format (names in order) for the Rust test to compare."""
    sd = torch.load(path, weights_only=True)
    print(json.dumps({"tensors": [{"name": k, "dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape),
                                   "sha256": digest(v)} for k, v in sd.items()]}))


def pyjson(path):
    """Prints json.dumps(<file's JSON>, indent=2, sort_keys=True) + newline (index files)."""
    sys.stdout.write(json.dumps(json.load(open(path)), indent=2, sort_keys=True) + "\n")


def check(dir_):
    checked = 0
    for fn in sorted(os.listdir(dir_)):
        if not fn.endswith(".safetensors"):
            continue
        side = os.path.join(dir_, fn[: -len(".safetensors")] + ".expect.json")
        if not os.path.exists(side):
            continue
        p = os.path.join(dir_, fn)
        exp = json.load(open(side))
        got = describe(p)
        if got["tensors"] != exp["tensors"]:
            sys.exit(f"{fn}: tensors differ\n got {got['tensors']}\n exp {exp['tensors']}")
        if exp.get("metadata") is not None and got["metadata"] != exp["metadata"]:
            sys.exit(f"{fn}: metadata differ: {got['metadata']} vs {exp['metadata']}")
        if exp.get("resave_identical"):
            d = load_file(p)
            tmp = p + ".resaved"
            save_file(d, tmp, metadata=got["metadata"])
            a, b = open(p, "rb").read(), open(tmp, "rb").read()
            os.remove(tmp)
            if a != b:
                sys.exit(f"{fn}: not byte-identical to safetensors' own output\n ours {a[:200]!r}\n theirs {b[:200]!r}")
        checked += 1
    print(f"checked {checked}")
    if checked == 0:
        sys.exit("nothing checked")


def views(dir_):
    """`<name>.views.json`: {"tensors": {name: {"storage_hex", "dtype", "shape", "stride",
    "offset", "cast"?}}, "metadata": {...}, "resave_identical": bool}; "cast" is a dtype the
    view is converted to with torch's `.to()` before comparing. The file must hold exactly
    these names, each equal bit for bit to torch's as_strided view of the storage bytes."""
    checked = 0
    for fn in sorted(os.listdir(dir_)):
        side = os.path.join(dir_, fn[: -len(".safetensors")] + ".views.json")
        if not fn.endswith(".safetensors") or not os.path.exists(side):
            continue
        p = os.path.join(dir_, fn)
        exp = json.load(open(side))
        got = load_file(p)
        if sorted(got) != sorted(exp["tensors"]):
            sys.exit(f"{fn}: names {sorted(got)} != {sorted(exp['tensors'])}")
        for name, e in exp["tensors"].items():
            dt = getattr(torch, e["dtype"])
            raw = bytearray.fromhex(e["storage_hex"])
            base = torch.frombuffer(raw, dtype=torch.uint8).view(dt) if raw else torch.empty(0, dtype=dt)
            want = torch.as_strided(base, e["shape"], e["stride"], e["offset"])
            if e.get("cast"):
                # The converter's --dtype: torch's own cast of the same view is the oracle.
                dt = getattr(torch, e["cast"])
                want = want.to(dt)
            have = got[name]
            if have.dtype != dt or list(have.shape) != e["shape"]:
                sys.exit(f"{fn}: {name}: {have.dtype} {list(have.shape)} != {dt} {e['shape']}")
            if not torch.equal(have.contiguous().view(-1).view(torch.uint8), want.contiguous().view(-1).view(torch.uint8)):
                sys.exit(f"{fn}: {name}: values differ\n have {have}\n want {want}")
        with safe_open(p, "pt") as f:
            md = f.metadata()
        if md != exp["metadata"]:
            sys.exit(f"{fn}: metadata {md} != {exp['metadata']}")
        if exp.get("resave_identical"):
            tmp = p + ".resaved"
            save_file(got, tmp, metadata=md)
            a, b = open(p, "rb").read(), open(tmp, "rb").read()
            os.remove(tmp)
            if a != b:
                sys.exit(f"{fn}: not byte-identical to safetensors' own output\n ours   {a[:300]!r}\n theirs {b[:300]!r}")
        checked += 1
    print(f"checked {checked}")
    if checked == 0:
        sys.exit("nothing checked")


def casts(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(99)
    specials32 = torch.tensor(
        [0.0, -0.0, 1.0, -1.0, 65504.0, 65520.0, 65519.99, 1e-8, 6e-8, 5.96e-8, 1e-40, 3.4e38, -3.4e38,
         float("inf"), float("-inf"), float("nan"), 1.0009765625, 1.00048828125, 1.000732421875,
         1.00390625, 1.005859375, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -9],
        dtype=torch.float32,
    )
    # NaNs with payloads and signs (bit patterns).
    nan_bits = torch.tensor([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FA12345, 0xFF812345], dtype=torch.int64)
    nans32 = nan_bits.to(torch.int32).view(torch.float32) if False else torch.from_numpy(
        __import__("numpy").array(nan_bits.tolist(), dtype="<u4").view("<f4").copy()
    )
    f32 = torch.cat([specials32, nans32, torch.randn(2000, generator=g) * 10, torch.randn(500, generator=g) * 1e-5])
    f64 = torch.cat([f32.double(), torch.randn(2000, generator=g, dtype=torch.float64),
                     torch.tensor([1.0 + 2.0 ** -11 + 2.0 ** -40, 1.0 + 2.0 ** -8 + 2.0 ** -40, 1e300, -1e-300],
                                  dtype=torch.float64)])
    f16 = torch.cat([torch.arange(0, 65536, dtype=torch.int32).to(torch.uint16).view(torch.float16)])
    bf16 = torch.arange(0, 65536, dtype=torch.int32).to(torch.uint16).view(torch.bfloat16)
    srcs = {"f32": f32, "f64": f64, "f16": f16, "bf16": bf16}
    targets = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16, "bf16": torch.bfloat16}
    d = {}
    for sname, s in srcs.items():
        d[f"in_{sname}"] = s
        for tname, tdt in targets.items():
            if tdt != s.dtype:
                d[f"{sname}_to_{tname}"] = s.to(tdt)
    save_file(d, os.path.join(out, "casts.safetensors"))
    print("wrote", len(d))


if __name__ == "__main__":
    cmd, arg = sys.argv[1], sys.argv[2]
    {"write": write, "check": check, "views": views, "casts": casts, "pyjson": pyjson, "pt": pt, "ptcheck": ptcheck}[cmd](arg)
