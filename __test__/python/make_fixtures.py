#!/usr/bin/env python3
"""Writes the interop fixtures with REAL torch (2.11, pinned in requirements.txt).

    python make_fixtures.py [OUTDIR]        (default: __test__/fixtures/generated/)

Every fixture is written by torch itself with a fixed seed, then loaded back by the oracle
(oracle.py, same process) to write `<file>.expected.json` next to it:

    {"file", "description", "producer", "format", "weights_only_ok",
     "load": {"weights_only": bool, "map_location": str|null},   # how "value" was loaded
     "value": NODE (oracle.py describe format), "inspect": (oracle.py inspect-json format),
     "notes": [...]}

and `index.json` lists every fixture with its tags. Nothing expected is hand-written.

What torch cannot write on this machine is constructed from torch's own output, and each
such file says so in its description (producer "constructed"):
  * big_endian.pt: torch never writes `byteorder`=`big` on a little-endian host. We take a
    torch zip file, set the `byteorder` record to `big` and byte-swap every storage by its
    element size (complex: each half), rezipped with Python's zipfile (stored, no padding).
    Only storages with legacy storage classes are used: torch 2.11 byte-swaps UntypedStorage
    records (uint16, complex32, float8, ...) as single bytes, i.e. not at all.
  * cuda_location.pt: a normal file whose persistent ids' location 'cpu' is rewritten to
    'cuda:0' (BINUNICODE rewritten opcode-aware in data.pkl), rezipped. Loads with
    map_location='cpu'.
  * tar_*.tar: the pre-0.1.10 tar format, THE ONLY SYNTHESISED FORMAT: no installable torch
    writes it. write_tar() follows 0.1.x `_save` (FORMAT.md 4.3) with storage bytes from
    torch; torch 2.11's loader reads it back (that is what the sidecar records).
When Debian's torch 1.13 is importable by /usr/bin/python3 (or TORCHSAVE_PYTHON_LEGACY),
make_fixtures_113.py runs under it and its files (t113_*) get sidecars from torch 2.11.
"""
import argparse
import collections
import io
import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.optim as optim  # noqa: E402

import fixture_classes  # noqa: E402
import oracle  # noqa: E402

fixture_classes.install_in_main()
from fixture_classes import BNModel, LSTMModel, TheModelClass  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "fixtures", "generated")
TORCH_VERSION = torch.__version__.split("+", 1)[0]

INDEX = []


def seed(n=0):
    torch.manual_seed(n)
    np.random.seed(n)


def write_sidecar(out, fname, description, producer, tags, map_location=None, notes=()):
    path = os.path.join(out, fname)
    try:
        oracle.load(path, True, map_location)
        ok = True
    except Exception:
        ok = False
    value = oracle.load(path, ok, map_location)
    side = {
        "file": fname,
        "description": description,
        "producer": producer,
        "format": oracle.detect_format(path),
        "weights_only_ok": ok,
        "load": {"weights_only": ok, "map_location": map_location},
        "value": oracle.describe_value(value),
        "inspect": oracle.inspect_json(path),
        "notes": list(notes),
    }
    with open(path + ".expected.json", "w", encoding="utf-8") as f:
        json.dump(side, f, ensure_ascii=False, indent=1)
        f.write("\n")
    INDEX.append({"file": fname, "description": description, "producer": producer, "tags": list(tags),
                  "format": side["format"], "weights_only_ok": ok})
    return value


def save(out, obj, name, description, tags=(), legacy=False, **kw):
    """torch.save to NAME.pt (zip) and, with legacy=True, NAME.legacy.pt too; sidecars for both."""
    fname = f"{name}.pt"
    torch.save(obj, os.path.join(out, fname), **kw)
    write_sidecar(out, fname, description, f"torch {TORCH_VERSION}", ("zip",) + tuple(tags))
    if legacy:
        lname = f"{name}.legacy.pt"
        torch.save(obj, os.path.join(out, lname), _use_new_zipfile_serialization=False, **kw)
        write_sidecar(out, lname, description + " (legacy format)", f"torch {TORCH_VERSION}",
                      ("legacy",) + tuple(tags))


# --- models and training -------------------------------------------------------------------


def trained_seed_model(steps=3):
    """The seed's model and its SGD(lr=0.001, momentum=0.9) after `steps` real steps."""
    seed(0)
    model = TheModelClass()
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    loss = None
    for _ in range(steps):
        x = torch.randn(4, 3, 32, 32)
        y = torch.randint(0, 10, (4,))
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    return model, optimizer, loss


def seed_fixtures(out):
    seed(0)
    model = TheModelClass()
    save(out, model.state_dict(), "seed_state_dict", "the seed's TheModelClass state_dict, fresh init (seed 0)",
         ("seed", "state_dict"), legacy=True)
    model, optimizer, loss = trained_seed_model()
    save(out, optimizer.state_dict(), "seed_optimizer",
         "SGD(lr=0.001, momentum=0.9) state_dict after 3 real steps on TheModelClass",
         ("seed", "optimizer"), legacy=True)
    save(out, model.state_dict(), "seed_state_dict_trained", "TheModelClass state_dict after the 3 SGD steps",
         ("seed", "state_dict"))
    ckpt = {
        "epoch": 3,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "loss": loss,
    }
    save(out, ckpt, "seed_checkpoint", "general checkpoint {'epoch','model_state_dict','optimizer_state_dict','loss'}",
         ("seed", "checkpoint"), legacy=True)
    save(out, model, "seed_whole_model", "torch.save(model) of __main__.TheModelClass (needs weights_only=False)",
         ("seed", "whole_model"), legacy=True)

    seed(0)
    base = TheModelClass()
    dp = nn.DataParallel(base)
    save(out, dp.state_dict(), "dataparallel_state_dict", "nn.DataParallel(TheModelClass()).state_dict(): 'module.' keys",
         ("seed", "dataparallel", "state_dict"), legacy=True)
    dp2 = nn.DataParallel(nn.DataParallel(base))
    save(out, dp2.state_dict(), "dataparallel_double_state_dict",
         "nn.DataParallel(nn.DataParallel(model)).state_dict(): 'module.module.' keys", ("dataparallel", "state_dict"))
    save(out, dp, "dataparallel_whole_model", "torch.save(nn.DataParallel(TheModelClass())) (CPU: device_ids=[])",
         ("dataparallel", "whole_model"))


def layer_fixtures(out):
    seed(1)
    m = BNModel()
    m.train()
    for _ in range(3):
        m(torch.randn(2, 3, 8, 8))
    m.eval()
    save(out, m.state_dict(), "bn_dropout_state_dict",
         "Conv2d+BatchNorm2d+Dropout+Linear after 3 train-mode forwards (num_batches_tracked=3)",
         ("state_dict", "batchnorm"), legacy=True)
    save(out, m, "bn_dropout_whole_model", "torch.save(BNModel) whole module", ("whole_model", "batchnorm"))
    seed(2)
    lstm = LSTMModel()
    save(out, lstm.state_dict(), "lstm_state_dict", "Embedding + 2-layer LSTM + Linear state_dict",
         ("state_dict", "lstm"), legacy=True)


# --- dtypes --------------------------------------------------------------------------------

NEW_DTYPES = {"uint16", "uint32", "uint64", "complex32", "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz",
              "float8_e4m3fnuz", "float8_e8m0fnu"}
FLOAT_VALUES = [0.0, -0.0, 1.0, -1.5, 3.140625, 1e-3, 65504.0, float("inf"), float("-inf"), float("nan"), 1e-8, -2.5e5]


def dtype_fixtures(out):
    seed(3)
    base = torch.tensor(FLOAT_VALUES, dtype=torch.float64).reshape(3, 4)
    ints = torch.tensor([[0, 1, -1, 127], [-128, 100, -100, 42], [7, -7, 55, -55]], dtype=torch.int64)
    made = {}
    for name in ["float16", "float32", "float64", "bfloat16"]:
        made[name] = base.to(getattr(torch, name))
    for name in ["int8", "int16", "int32", "int64"]:
        made[name] = ints.to(getattr(torch, name))
    made["int64"] = torch.tensor([[0, -1, 2**62, -(2**63)], [2**63 - 1, 12345678901, -5, 3], [1, 2, 3, 4]], dtype=torch.int64)
    uints = torch.tensor([[0, 1, 2, 255], [128, 200, 7, 77], [9, 99, 199, 250]], dtype=torch.int64)
    made["uint8"] = uints.to(torch.uint8)
    made["uint16"] = torch.tensor([[0, 1, 65535, 256], [1000, 2, 3, 4], [5, 6, 7, 8]], dtype=torch.int32).to(torch.uint16)
    made["uint32"] = torch.tensor([[0, 1, 2**32 - 1, 2**31], [10, 20, 30, 40], [5, 6, 7, 8]], dtype=torch.int64).to(torch.uint32)
    made["uint64"] = torch.tensor([[0, 1, 2**63 - 1, 2**40], [10, 20, 30, 40], [5, 6, 7, 8]], dtype=torch.int64).to(torch.uint64)
    made["bool"] = torch.tensor([[True, False, True, True], [False, False, True, False], [True, True, False, False]])
    cplx = torch.complex(base[:, :2].to(torch.float64).nan_to_num(), base[:, 2:].to(torch.float64).nan_to_num())
    made["complex64"] = cplx.to(torch.complex64)
    made["complex128"] = cplx
    made["complex32"] = torch.complex(torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.25, 3.0, -1.0])).to(torch.complex32)
    for name in ["float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu"]:
        dt = getattr(torch, name, None)
        if dt is None:
            continue
        src = torch.tensor([[0.0, 1.0, -1.5, 2.0], [0.25, 4.0, -8.0, 0.5], [1.75, -0.125, 16.0, 3.0]])
        if name == "float8_e8m0fnu":
            src = src.abs().clamp(min=0.125)  # e8m0 holds powers of two only
        made[name] = src.to(dt)
    for name, t in made.items():
        # torch 2.11 writes the "new" dtypes (UntypedStorage + _rebuild_tensor_v3) in the legacy
        # format too, but cannot load them back ('UntypedStorage' has no attribute 'dtype'), so
        # they get no legacy fixture.
        legacy = name not in NEW_DTYPES
        save(out, {"t": t, "dtype": t.dtype}, f"dtype_{name}", f"a {name} tensor and the dtype object itself",
             ("dtype",), legacy=legacy)

    x = torch.randn(2, 3, 4)
    save(out, {"q": torch.quantize_per_tensor(x, 0.05, 3, torch.qint8)}, "quant_qint8_per_tensor",
         "quantize_per_tensor qint8 scale 0.05 zp 3", ("dtype", "quantized"), legacy=True)
    save(out, {"q": torch.quantize_per_tensor(x.abs(), 0.02, 10, torch.quint8)}, "quant_quint8_per_tensor",
         "quantize_per_tensor quint8 scale 0.02 zp 10", ("dtype", "quantized"), legacy=True)
    save(out, {"q": torch.quantize_per_tensor(x, 0.001, 0, torch.qint32)}, "quant_qint32_per_tensor",
         "quantize_per_tensor qint32 scale 0.001 zp 0", ("dtype", "quantized"), legacy=True)
    scales = torch.tensor([0.1, 0.05], dtype=torch.float64)
    zps = torch.tensor([0, 2], dtype=torch.int64)
    save(out, {"q": torch.quantize_per_channel(x, scales, zps, 0, torch.qint8)}, "quant_qint8_per_channel",
         "quantize_per_channel qint8 axis 0", ("dtype", "quantized"), legacy=True)
    save(out, {"q": torch.quantize_per_channel(x.abs(), scales, zps, 0, torch.quint8)}, "quant_quint8_per_channel",
         "quantize_per_channel quint8 axis 0", ("dtype", "quantized"))


# --- views, sharing, tensor flavours -------------------------------------------------------


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Embedding(5, 4)
        self.dec = nn.Linear(4, 5, bias=False)
        self.dec.weight = self.enc.weight


def view_fixtures(out):
    seed(4)
    base = torch.arange(10, dtype=torch.float32)
    save(out, {"base": base, "slice": base[2:5], "step": base[::2], "tail": base[7:]}, "views_offsets",
         "views of one storage: base, base[2:5], base[::2], base[7:] (one data record)", ("views",), legacy=True)
    m = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    save(out, {"m": m, "t": m.t(), "col": m[:, 1], "expanded": torch.ones(3, 1).expand(3, 4)},
         "views_noncontiguous", "transposed, column and expanded (stride 0) views", ("views",), legacy=True)
    save(out, {"sliced_only": base[3:6]}, "views_slice_only",
         "only a slice is saved: the whole 10-element storage is written, offset 3", ("views",))
    save(out, Tied().state_dict(), "tied_weights",
         "state_dict of a model whose Linear weight IS the Embedding weight (two keys, one storage)",
         ("views", "state_dict"), legacy=True)
    t = torch.randn(3)
    save(out, {"a": t, "b": t, "list": [t, t]}, "same_object_twice",
         "one tensor object under two keys and twice in a list (pickle memo)", ("views",), legacy=True)
    save(out, {"scalar": torch.tensor(3.5), "int_scalar": torch.tensor(7), "empty": torch.empty(0),
               "empty2d": torch.zeros(0, 3), "empty_long": torch.zeros(2, 0, dtype=torch.int64)},
         "zero_dim_and_empty", "0-dim and empty tensors", ("views",), legacy=True)
    save(out, {"w": torch.randn(2, 2, requires_grad=True), "plain": torch.randn(2)}, "requires_grad",
         "a leaf tensor with requires_grad=True", ("views",), legacy=True)
    save(out, {"p": nn.Parameter(torch.randn(3)), "p_nograd": nn.Parameter(torch.randn(2), requires_grad=False)},
         "parameter_in_dict", "nn.Parameter objects in a plain dict", ("views",), legacy=True)
    t = torch.tensor([1.0, 2.0, 3.0])
    t.foo = "bar"
    t.step = 7
    save(out, {"t": t}, "tensor_with_attr", "a tensor carrying Python attributes (_rebuild_from_type_v2)",
         ("views",))
    i = torch.tensor([[0, 1, 1], [2, 0, 2]])
    v = torch.tensor([3.0, 4.0, 5.0])
    save(out, {"s": torch.sparse_coo_tensor(i, v, (2, 3)), "s_coalesced": torch.sparse_coo_tensor(i, v, (2, 3)).coalesce()},
         "sparse_coo", "sparse COO tensors (uncoalesced and coalesced)", ("views", "sparse"))
    c = torch.complex(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -4.0]))
    save(out, {"c": c, "conj": c.conj()}, "conj_view", "a complex64 tensor and its lazy conj() view ({'conj': True})",
         ("views",))


# --- plain Python values -------------------------------------------------------------------


def value_fixtures(out):
    seed(5)
    nested = {
        1: "int key",
        -7: [1, 2, 3],
        "bigints": [2**70, -(2**63), 2**63 - 1, -(2**70) - 12345, 2**31, -(2**31) - 1, 0],
        "text": ["中文", "żółć", "emoji \U0001F600", "", "tab\tnewline\n"],
        "中文键": "non-ASCII key",
        "bytes": b"\x00\x01\xfe\xffabc",
        "bytearray": bytearray(b"\x10\x20"),
        "floats": [float("inf"), float("-inf"), float("nan"), -0.0, 0.0, 1e-310, 1.7976931348623157e308, 0.1, 2.0],
        "tuple": (1, "a", (2.5, None)),
        "list": [1, "a", [2.5, None]],
        "empty": ((), [], {}),
        "set": {3, 1, 2},
        "complex": complex(1.5, -2.0),
        "flags": (None, True, False),
        "nested": {"a": {"b": {"c": [{"d": (torch.ones(2),)}]}}},
    }
    save(out, nested, "nested_containers", "dict with int keys, bigints, non-ASCII, bytes, bytearray, inf/nan/-0.0, "
         "tuples vs lists, set, complex, None/True, a tensor deep inside", ("values",), legacy=True)
    save(out, {"fs": frozenset({1, 2})}, "frozenset", "a frozenset (not allowed by weights_only)", ("values",))
    save(out, {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64": np.array([-1, 2**40, 3], dtype=np.int64),
        "bool": np.array([True, False, True]),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "scalars": [np.float64(1.5), np.float32(-2.25), np.int64(-3), np.int32(7), np.bool_(True), np.uint8(200)],
    }, "numpy_values", "numpy arrays (float32, int64, bool, fortran order) and numpy scalars", ("values", "numpy"))
    ns = argparse.Namespace(lr=0.01, epochs=3, arch="TheModelClass", betas=(0.9, 0.999))
    save(out, {"args": ns, "state_dict": collections.OrderedDict(w=torch.ones(2))}, "namespace",
         "argparse.Namespace next to a state dict (common in old checkpoints)", ("values",))
    obj = {"sd": collections.OrderedDict(a=torch.arange(4.0), b=torch.zeros(2, dtype=torch.int64)), "n": 5}
    save(out, obj, "protocol2", "torch.save(..., pickle_protocol=2) (the default)", ("protocol",), legacy=True,
         pickle_protocol=2)
    save(out, obj, "protocol4", "torch.save(..., pickle_protocol=4): FRAME/MEMOIZE/SHORT_BINUNICODE; "
         "weights_only rejects FRAME", ("protocol",), legacy=True, pickle_protocol=4)


# --- container oddities --------------------------------------------------------------------


def rezip(src, dst, transform):
    """Copy a zip, record by record, through transform(name, data) -> data; stored, no padding."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, transform(info.filename, zin.read(info.filename)))


def storage_elem_sizes(pkl):
    """key -> element size, from the persistent ids of a zip data.pkl (our own trusted files)."""
    sizes = {}

    class Rec(pickle.Unpickler):
        def persistent_load(self, pid):
            _, stype, key, _loc, numel = pid
            dtype = torch.uint8 if stype is torch.UntypedStorage else stype.dtype
            sizes[key] = torch._utils._element_size(dtype) // (2 if dtype.is_complex else 1)
            return torch.storage.TypedStorage(numel, dtype=dtype, _internal=True)

    Rec(io.BytesIO(pkl)).load()
    return sizes


def big_endian(out):
    seed(6)
    src = collections.OrderedDict(
        f32=torch.randn(2, 3), f64=torch.randn(3, dtype=torch.float64), f16=torch.randn(4).half(),
        bf16=torch.randn(4).bfloat16(), i16=torch.tensor([1, -2, 300], dtype=torch.int16),
        i32=torch.tensor([70000, -1], dtype=torch.int32), i64=torch.tensor([2**40, -3]),
        u8=torch.tensor([1, 2, 255], dtype=torch.uint8), b=torch.tensor([True, False]),
        c64=torch.complex(torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])),
    )
    src["f32_view"] = src["f32"][1]
    tmp = os.path.join(out, "big_endian.source.tmp")
    torch.save(src, tmp)
    with zipfile.ZipFile(tmp) as z:
        folder = z.namelist()[0].split("/", 1)[0]
        sizes = storage_elem_sizes(z.read(f"{folder}/data.pkl"))

    def swap(name, data):
        rec = name.split("/", 1)[1]
        if rec == "byteorder":
            return b"big"
        if rec.startswith("data/"):
            n = sizes[rec[len("data/"):]]
            return b"".join(data[i:i + n][::-1] for i in range(0, len(data), n))
        return data

    dst = os.path.join(out, "big_endian.pt")
    rezip(tmp, dst, swap)
    os.remove(tmp)
    loaded = write_sidecar(out, "big_endian.pt", "CONSTRUCTED: a torch zip with byteorder 'big' and every storage "
                           "byte-swapped (torch cannot write big-endian on a little-endian host); "
                           "torch byte-swaps back on load", "constructed from torch " + TORCH_VERSION,
                           ("zip", "constructed", "byteorder"),
                           notes=["values must equal the little-endian originals"])
    for k, t in src.items():
        if oracle.tensor_sha256(loaded[k]) != oracle.tensor_sha256(t):
            raise SystemExit(f"big_endian.pt: {k} did not round-trip through torch's byte swap")


def cuda_location(out):
    seed(7)
    tmp = os.path.join(out, "cuda_location.source.tmp")
    torch.save(collections.OrderedDict(w=torch.randn(2, 2), b=torch.randn(2)), tmp)

    def patch(name, data):
        if not name.endswith("/data.pkl"):
            return data
        outb = bytearray()
        last = 0
        for op, arg, pos in pickletools.genops(data):
            if op.name == "BINUNICODE" and arg == "cpu":
                outb += data[last:pos]
                outb += b"X" + struct.pack("<I", 6) + b"cuda:0"
                last = pos + 1 + 4 + 3
        outb += data[last:]
        return bytes(outb)

    dst = os.path.join(out, "cuda_location.pt")
    rezip(tmp, dst, patch)
    os.remove(tmp)
    notes = ["storages are located on 'cuda:0'; load with map_location='cpu'"]
    if not torch.cuda.is_available():
        try:
            torch.load(dst)
            raise SystemExit("cuda_location.pt loaded without a GPU and without map_location")
        except RuntimeError as e:
            notes.append(f"without map_location on a CPU-only machine torch raises: {str(e).splitlines()[0]}")
    write_sidecar(out, "cuda_location.pt", "CONSTRUCTED: persistent-id locations patched 'cpu' -> 'cuda:0'",
                  "constructed from torch " + TORCH_VERSION, ("zip", "constructed", "device"), map_location="cpu",
                  notes=notes)


def odd_archives(out):
    seed(8)
    sd = collections.OrderedDict(a=torch.randn(3), b=torch.arange(4))
    tmp = os.path.join(out, "some_other_name.pt")
    torch.save(sd, tmp)
    os.replace(tmp, os.path.join(out, "folder_mismatch.pt"))
    write_sidecar(out, "folder_mismatch.pt", "torch's own bytes, saved as some_other_name.pt then renamed: the "
                  "archive folder is 'some_other_name'", f"torch {TORCH_VERSION}", ("zip", "archive_name"))
    buf = io.BytesIO()
    torch.save(sd, buf)
    with open(os.path.join(out, "buffer_saved.pt"), "wb") as f:
        f.write(buf.getvalue())
    write_sidecar(out, "buffer_saved.pt", "torch.save into a BytesIO: folder 'archive'", f"torch {TORCH_VERSION}",
                  ("zip", "archive_name"))
    many = collections.OrderedDict((f"layer{i}.w", torch.full((2,), float(i))) for i in range(2000))
    save(out, many, "many_tensors", "2,000 tiny tensors: 2,000 storages (lexicographic vs numeric record order, "
         "SETITEMS batches of 1000)", ("zip", "many"), legacy=True)


# --- the pre-0.1.10 tar format (synthesised) -----------------------------------------------

STORAGE_CLASS = {
    torch.float32: "FloatStorage", torch.float64: "DoubleStorage", torch.float16: "HalfStorage",
    torch.int64: "LongStorage", torch.int32: "IntStorage", torch.int16: "ShortStorage",
    torch.int8: "CharStorage", torch.uint8: "ByteStorage",
}
TENSOR_CLASS = {
    torch.float32: "FloatTensor", torch.float64: "DoubleTensor", torch.float16: "HalfTensor",
    torch.int64: "LongTensor", torch.int32: "IntTensor", torch.int16: "ShortTensor",
    torch.int8: "CharTensor", torch.uint8: "ByteTensor",
}


def write_tar(path, obj, views=()):
    """The 0.1.x `_save` layout: members sys_info, pickle, tensors, storages (FORMAT.md 4.3).

    `views` is a list of (name_in_obj, root_tensor_name, offset, numel): that tensor is written
    as a storage *view* of the root's storage (the storages member's trailing view list).
    Keys are ints standing for the old `_cdata` pointers; storages and tensors share one key
    space in the loader, so they get disjoint ranges."""
    storages = {}   # storage _cdata -> (key, untyped bytes, dtype)
    tensors = {}    # id(tensor) -> (key, storage_key, tensor)
    view_list = []
    view_of = {v[0]: v for v in views}

    def storage_key(t):
        st = t.untyped_storage()
        if st._cdata not in storages:
            storages[st._cdata] = (1000 + len(storages), bytes(st), t.dtype)
        return storages[st._cdata][0]

    def tensor_key(name, t):
        if id(t) in tensors:
            return tensors[id(t)][0]
        if name in view_of:
            _, root_name, off, numel = view_of[name]
            root_key = storage_key(obj[root_name])
            vkey = 3000 + len(view_list)
            view_list.append((vkey, root_key, off, numel))
            skey = vkey
        else:
            skey = storage_key(t)
        tensors[id(t)] = (5000 + len(tensors), skey, t)
        return tensors[id(t)][0]

    class P(pickle.Pickler):
        current = None

        def persistent_id(self, o):
            if isinstance(o, torch.Tensor):
                return str(tensor_key(self.current, o))
            return None

    pk = io.BytesIO()
    p = P(pk, protocol=2)
    # Walk first so keys follow the object's order, then pickle with the names known.
    for name, t in obj.items():
        P.current = name
        tensor_key(name, t)
    p.dump(obj)

    def pk2(x):
        return pickle.dumps(x, protocol=2)

    st = io.BytesIO()
    st.write(pk2(len(storages)))
    for key, data, dtype in storages.values():
        st.write(pk2((key, "cpu", getattr(torch, STORAGE_CLASS[dtype]))))
        st.write(struct.pack("<q", len(data) // torch._utils._element_size(dtype)))
        st.write(data)
    st.write(pk2(view_list))

    tn = io.BytesIO()
    tn.write(pk2(len(tensors)))
    for key, skey, t in tensors.values():
        tn.write(pk2((key, skey, getattr(torch, TENSOR_CLASS[t.dtype]))))
        if skey >= 3000:  # a view storage starts at the view's offset
            offset = 0
        else:
            offset = t.storage_offset()
        tn.write(struct.pack("<i", t.dim()) + b"\0\0\0\0")
        tn.write(struct.pack(f"<{t.dim()}q", *t.shape))
        tn.write(struct.pack(f"<{t.dim()}q", *t.stride()))
        tn.write(struct.pack("<q", offset))

    sys_info = pk2({"protocol_version": 1000, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}})
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("sys_info", sys_info), ("pickle", pk.getvalue()), ("tensors", tn.getvalue()),
                           ("storages", st.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o640
            tar.addfile(info, io.BytesIO(data))


def tar_fixtures(out):
    seed(0)
    sd = TheModelClass().state_dict()
    write_tar(os.path.join(out, "tar_seed_state_dict.tar"), sd)
    loaded = write_sidecar(out, "tar_seed_state_dict.tar", "SYNTHESISED pre-0.1.10 tar format (the only synthesised "
                           "format): the seed state_dict, written by write_tar() per 0.1.x _save",
                           "synthesised (write_tar) with torch " + TORCH_VERSION, ("tar", "synthesised", "seed"))
    for k, t in sd.items():
        if oracle.tensor_sha256(loaded[k]) != oracle.tensor_sha256(t):
            raise SystemExit(f"tar_seed_state_dict.tar: {k} differs after torch's tar loader")
    base = torch.arange(12, dtype=torch.float64)
    obj = collections.OrderedDict(base=base, view=base[4:10], ints=torch.tensor([[1, 2], [3, 4]], dtype=torch.int16).t())
    write_tar(os.path.join(out, "tar_views.tar"), obj, views=[("view", "base", 4, 6)])
    loaded = write_sidecar(out, "tar_views.tar", "SYNTHESISED tar format with a storage view record "
                           "(view_key, root_key, offset, numel) and a transposed tensor",
                           "synthesised (write_tar) with torch " + TORCH_VERSION, ("tar", "synthesised", "views"),
                           notes=["torch materialises the view record as a storage of its own (new storage identity)"])
    if not torch.equal(loaded["view"], base[4:10]) or not torch.equal(loaded["ints"], obj["ints"]):
        raise SystemExit("tar_views.tar did not load back as written")


# --- torch 1.13 ----------------------------------------------------------------------------


def legacy_python():
    cand = os.environ.get("TORCHSAVE_PYTHON_LEGACY", "/usr/bin/python3")
    if not os.path.exists(cand):
        return None
    r = subprocess.run([cand, "-c", "import torch, numpy; print(torch.__version__)"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("1."):
        return None
    return cand, r.stdout.strip()


def torch113_fixtures(out):
    lp = legacy_python()
    if lp is None:
        print("make_fixtures: no torch 1.x for /usr/bin/python3: skipping t113_* fixtures", file=sys.stderr)
        return None
    py, version = lp
    r = subprocess.run([py, os.path.join(HERE, "make_fixtures_113.py"), out], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"make_fixtures_113.py failed:\n{r.stderr}")
    made = json.loads(r.stdout)
    for item in made:
        write_sidecar(out, item["file"], item["description"], f"torch {version} (Debian python3-torch)",
                      tuple(item["tags"]) + ("torch113",))
    return version


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=DEFAULT_OUT)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        p = os.path.join(out, f)
        if os.path.isfile(p) and (f.endswith((".pt", ".tar", ".json", ".tmp"))):
            os.remove(p)
    for step in (seed_fixtures, layer_fixtures, dtype_fixtures, view_fixtures, value_fixtures, big_endian,
                 cuda_location, odd_archives, tar_fixtures):
        step(out)
    t113 = torch113_fixtures(out)
    with open(os.path.join(out, "index.json"), "w", encoding="utf-8") as f:
        json.dump({"torch": TORCH_VERSION, "torch113": t113, "fixtures": INDEX}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"make_fixtures: {len(INDEX)} fixtures in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
