"""Seed corpus for the cargo-fuzz targets (scripts/fuzz.sh runs it with the Python oracle).

Usage: seeds.py OUT_DIR TARGET...  Writes OUT_DIR/<target>/<sha1> for each target named, from
the fixtures (sorted by their content, never by their names) under crate/core/tests,
__test__/fixtures and ../shared/peer-corpus (when present), the zip records that are pickles,
and safetensors files written by the real safetensors package (none are committed).
Run from the repository root.
"""
import hashlib, io, os, struct, sys, zipfile
out, targets = sys.argv[1], sys.argv[2:]
roots = ["crate/core/tests", "__test__/fixtures", "../shared/peer-corpus"]
skip_ext = {".rs", ".py", ".json", ".md", ".tsv", ".txt", ".toml", ".sh", ".ts", ".js"}
MAX = 64 * 1024  # bigger seeds slow every execution; the small ones reach the same code
LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
seeds = {t: {} for t in targets}

def add(targets_of, data):
    if len(data) > MAX:
        return
    h = hashlib.sha1(data).hexdigest()[:16]
    for t in targets_of:
        if t in seeds:
            seeds[t][h] = data

files = []
for r in roots:
    for d, _, names in os.walk(r):
        for n in names:
            if os.path.splitext(n)[1] not in skip_ext:
                files.append(os.path.join(d, n))
for p in sorted(files):
    with open(p, "rb") as f:
        b = f.read(MAX + 1)
    everything = ["load_bytes", "convert", "scan"]
    if b.startswith(b"PK\x03\x04"):
        add(everything + ["zip_archive", "torchscript"], b)
        try:
            z = zipfile.ZipFile(io.BytesIO(b))
            for i in z.infolist():
                if i.filename.endswith(".pkl"):
                    add(["unpickle", "writer_roundtrip"], z.read(i))
        except Exception:
            pass
    elif b.startswith(LEGACY):
        add(everything + ["legacy"], b)
    elif len(b) > 262 and b[257:262] == b"ustar":
        add(everything + ["tar"], b)
    elif len(b) >= 9 and b[8:9] == b"{" and struct.unpack("<Q", b[:8])[0] < len(b):
        add(everything + ["safetensors", "safetensors_header"], b)
    else:
        add(everything + ["unpickle", "legacy", "tar"], b)
# safetensors seeds from the real package: every dtype it has, 0-d, empty, metadata,
# several tensors (offset order), names needing JSON escapes.
try:
    import torch
    from safetensors.torch import save
except ImportError as e:
    sys.exit(f"fuzz.sh: the Python oracle lacks torch/safetensors ({e}); run scripts/python-env.sh")
st_targets = ["safetensors", "safetensors_header", "load_bytes", "convert"]
dtypes = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32,
          torch.int16, torch.int8, torch.uint8, torch.bool, torch.complex64,
          getattr(torch, "float8_e4m3fn", torch.float32), getattr(torch, "float8_e5m2", torch.float32),
          getattr(torch, "uint16", torch.int16), getattr(torch, "uint32", torch.int32), getattr(torch, "uint64", torch.int64)]
torch.manual_seed(0)
for d in dtypes:
    try:
        t = (torch.rand(2, 3) * 100).to(d)
        add(st_targets, save({"w": t}))
    except Exception:
        pass
add(st_targets, save({"scalar": torch.tensor(1.5), "empty": torch.zeros(0, 4), "v": torch.arange(5)}))
add(st_targets, save({"a.weight": torch.ones(4, 4), "a.bias": torch.zeros(4), "b/\\\"q\u00fc": torch.eye(2)},
                     metadata={"format": "pt", "note": "fuzz seed"}))
add(st_targets, save({f"layer{i}": torch.full((i + 1,), float(i)) for i in range(6)}))
add(st_targets, save({}))
for t, s in seeds.items():
    os.makedirs(os.path.join(out, t), exist_ok=True)
    for h, data in s.items():
        with open(os.path.join(out, t, h), "wb") as f:
            f.write(data)
print("fuzz.sh: seeds " + ", ".join(f"{t} {len(s)}" for t, s in seeds.items()))
