"""Writes the "files from the wild" fixtures next to this script with REAL numpy and PyTorch,
plus expected.json (everything in it is what numpy / torch read back, never typed by hand).

Run with the pinned venv (torch 2.11.0, numpy 2.x):
    ~/.cache/torchsave/venv-torch-2.11.0/bin/python crate/core/tests/wild/make_wild.py

Each file reproduces a way real checkpoints differ from what today's torch.save writes
(issue 13); crate/core/tests/wild.rs reads every one:

  np_py2_p0.pkl / np_py2_p2.pkl
      a dict of numpy arrays pickled the way Python 2's pickle wrote them: the arrays'
      __reduce_ex__ output (from the real numpy here), with every `str`/`bytes` written as a
      Python 2 `str` (STRING at protocol 0, SHORT_BINSTRING/BINSTRING at 2) and numpy's
      py2-era module name numpy.core.multiarray. The float64 payloads are not valid UTF-8, so
      Python 3 reads them only with encoding='latin1' (numpy then re-encodes the str as
      latin-1). Expected: pickle.load(encoding='latin1').
  torch_py2_numpy.pt
      torch.save (legacy stream format) of {'w': tensor, 'np': ndarray} through the same
      Python 2 style pickler: torch.load(weights_only=False, encoding='latin1') reads it.
  trailing_newline.pkl
      pickle.dumps(..., protocol=2) + b"\\n", like numpy's own test data; pickle.load reads it.
  zip64_stale_eocd.pt
      a real torch.save zip (torch always writes zip64 end records) whose 32-bit end record
      was rewritten to stale counts / size / offset; the zip64 record stays intact. torch
      (miniz) takes the zip64 values and reads it (checked below).
  sparse_layouts.pt
      sparse tensors of every layout: COO (coalesced, uncoalesced with duplicate indices,
      hybrid), CSR, CSC, BSR, BSC, batched CSR; expected sha256 = sha256 of
      t.to_dense().contiguous() bytes.
  torch_package.pt
      a torch.package archive (PackageExporter): packaged Python source + a pickle, no
      data.pkl at the top; torch.load cannot read it (the error is recorded).
"""

import hashlib
import io
import json
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

import numpy as np
import torch

assert torch.__version__.startswith("2.11"), torch.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(13)
torch.manual_seed(13)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def p(name):
    return os.path.join(HERE, name)


def tensor_bytes(t):
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.contiguous()
    if t.numel() == 0:
        return b""
    flat = t.reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


def ndarray_entry(path, a):
    """inspect --json's numpy entry, computed by numpy."""
    c = np.ascontiguousarray(a)
    if c.dtype.byteorder == ">":
        c = c.astype(c.dtype.newbyteorder("<"))
    return {
        "path": path,
        "dtype": a.dtype.name,
        "descr": a.dtype.str,
        "shape": list(a.shape),
        "nbytes": int(a.nbytes),
        "sha256": sha(c.tobytes(order="C")),
    }


def py2_repr_byte(c):
    named = {0x5C: b"\\\\", 0x27: b"\\'", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
    if c in named:
        return named[c]
    return bytes([c]) if 0x20 <= c < 0x7F else b"\\x%02x" % c


class Py2Pickler(pickle._Pickler):
    """Python's own (pure-Python) pickler, writing `str` and `bytes` as Python 2 `str`
    opcodes and numpy's Python 2 module name, as a Python 2 pickler did."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if self.proto == 0:
            # Python 2 wrote repr(str): printable ASCII as is, \\ \\' \\n \\r \\t, other
            # bytes as \\xNN; escape_decode (what py3's STRING loader uses) undoes it.
            self.write(b"S'" + b"".join(py2_repr_byte(c) for c in raw) + b"'\n")
        elif len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2str
    dispatch[str] = save_py2str

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        name = name or obj.__qualname__
        if module == "builtins":
            module = "__builtin__"
        module = module.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + module.encode("ascii") + b"\n" + name.encode("ascii") + b"\n")
        self.memoize(obj)

    dispatch[type] = save_global


def py2_dumps(obj, protocol):
    f = io.BytesIO()
    Py2Pickler(f, protocol=protocol).dump(obj)
    return f.getvalue()


expected = {"torch": torch.__version__.split("+")[0], "numpy": np.__version__, "files": {}}


def arrays_of(v, path=()):
    if isinstance(v, np.ndarray):
        return [ndarray_entry(list(path), v)]
    if isinstance(v, dict):
        return [e for k, x in v.items() for e in arrays_of(x, path + (k,))]
    return []


# --- numpy arrays pickled by Python 2 ----------------------------------------------------
arrays = OrderedDict()
arrays["f8"] = rng.standard_normal(73)  # 584 bytes, not valid UTF-8
arrays["f4_2d"] = rng.standard_normal((3, 5)).astype(np.float32)
arrays["i2_fortran"] = np.asfortranarray(np.arange(-6, 6, dtype=np.int16).reshape(3, 4) * 4099)
arrays["be_f8"] = rng.standard_normal(4).astype(">f8")
arrays["u1"] = np.arange(250, 256, dtype=np.uint8)
for proto in (0, 2):
    name = f"np_py2_p{proto}.pkl"
    data = py2_dumps(arrays, proto)
    with open(p(name), "wb") as f:
        f.write(data)
    back = pickle.loads(data, encoding="latin1")
    for k, a in arrays.items():
        assert np.array_equal(back[k], a), (name, k)
    try:
        pickle.loads(data)  # encoding='ASCII' (the default) cannot decode the payloads
        raise AssertionError("expected a UnicodeDecodeError")
    except UnicodeDecodeError:
        pass
    expected["files"][name] = {"arrays": arrays_of(back)}

# A torch checkpoint (legacy stream, like torch < 1.6 under Python 2) holding a numpy array.
class Py2PickleModule:
    Pickler = Py2Pickler
    Unpickler = pickle.Unpickler
    load = staticmethod(pickle.load)

    @staticmethod
    def dump(obj, f, protocol):
        Py2Pickler(f, protocol=protocol).dump(obj)
    __name__ = "py2pickle"


ckpt = OrderedDict(w=torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7, np=arrays["f8"][:40].copy())
torch.save(ckpt, p("torch_py2_numpy.pt"), pickle_module=Py2PickleModule, pickle_protocol=2,
           _use_new_zipfile_serialization=False)
back = torch.load(p("torch_py2_numpy.pt"), weights_only=False, encoding="latin1")
assert np.array_equal(back["np"], ckpt["np"]) and torch.equal(back["w"], ckpt["w"])
expected["files"]["torch_py2_numpy.pt"] = {
    "arrays": arrays_of(back),
    "tensors": [{"path": ["w"], "sha256": sha(tensor_bytes(back["w"]))}],
}

# --- a bare pickle followed by a newline --------------------------------------------------
obj = {"a": np.arange(5, dtype=np.int32), "b": [1, 2.5, "x"]}
with open(p("trailing_newline.pkl"), "wb") as f:
    f.write(pickle.dumps(obj, protocol=2) + b"\n")
with open(p("trailing_newline.pkl"), "rb") as f:
    back = pickle.load(f)
    assert f.read() == b"\n"
expected["files"]["trailing_newline.pkl"] = {"arrays": arrays_of(back), "trailing": 1}

# --- a zip whose 32-bit end record is stale -----------------------------------------------
sd = OrderedDict(weight=torch.randn(4, 3), bias=torch.randn(4))
buf = io.BytesIO()
torch.save(sd, buf)
z = bytearray(buf.getvalue())
eocd = z.rfind(b"PK\x05\x06")
z64 = z.rfind(b"PK\x06\x06")
assert z64 > 0 and z.rfind(b"PK\x06\x07") > z64, "torch.save writes zip64 end records"
n, cd_size, cd_off = struct.unpack_from("<HHII", z, eocd + 8)[1:]
entries64, size64, off64 = struct.unpack_from("<QQQ", z, z64 + 32)
assert (n, cd_size, cd_off) == (entries64, size64, off64)
# Stale: counts, size and offset of an earlier state of the archive (one record fewer).
struct.pack_into("<HHII", z, eocd + 8, n - 1, n - 1, cd_size - 60, cd_off - 64)
with open(p("zip64_stale_eocd.pt"), "wb") as f:
    f.write(bytes(z))
back = torch.load(p("zip64_stale_eocd.pt"), weights_only=True)
assert list(back) == ["weight", "bias"] and all(torch.equal(back[k], sd[k]) for k in sd)
expected["files"]["zip64_stale_eocd.pt"] = {
    "tensors": [{"path": [k], "sha256": sha(tensor_bytes(v))} for k, v in back.items()],
}

# --- sparse tensors of every layout -------------------------------------------------------
dense = torch.zeros(4, 6)
dense[0, 1], dense[1, 3], dense[2, 0], dense[3, 5], dense[3, 2] = 1.5, -2.25, 3.0, 0.5, 7.0
uncoalesced = torch.sparse_coo_tensor(
    torch.tensor([[0, 2, 0, 1, 2], [1, 3, 1, 0, 3]]),
    torch.tensor([1.25, -3.5, 2.0, 4.0, 0.75], dtype=torch.float64),
    (3, 4),
)
assert not uncoalesced.is_coalesced()
sparse = OrderedDict()
sparse["coo"] = dense.to_sparse()
sparse["coo_uncoalesced"] = uncoalesced
sparse["coo_int_uncoalesced"] = torch.sparse_coo_tensor(
    torch.tensor([[1, 1, 0, 1]]), torch.tensor([5, 7, -2, 100], dtype=torch.int64), (3,))
sparse["coo_hybrid"] = torch.randn(3, 4, 2).to_sparse(sparse_dim=2)
sparse["coo_f16"] = (torch.randn(5, 3) * (torch.rand(5, 3) > 0.5)).half().to_sparse()
sparse["coo_empty"] = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.int64), torch.zeros(0), (2, 3))
sparse["csr"] = dense.to_sparse_csr()
sparse["csc"] = dense.to_sparse_csc()
sparse["bsr"] = dense.to_sparse_bsr((2, 3))
sparse["bsc"] = dense.to_sparse_bsc((2, 2))
sparse["csr_batched"] = torch.stack([dense, dense.flip(0)]).to_sparse_csr()
sparse["csr_hybrid"] = torch.randn(3, 4, 2).to_sparse_csr(dense_dim=1)
sparse["dense"] = dense
torch.save(sparse, p("sparse_layouts.pt"))
back = torch.load(p("sparse_layouts.pt"), weights_only=True)
expected["files"]["sparse_layouts.pt"] = {
    "tensors": [
        {
            "path": [k],
            "dtype": str(v.dtype).removeprefix("torch."),
            "shape": list(v.shape),
            "layout": None if v.layout == torch.strided else str(v.layout).removeprefix("torch."),
            "sha256": sha(tensor_bytes(v)),
        }
        for k, v in back.items()
    ],
}

# --- a torch.package archive --------------------------------------------------------------
from torch.package import PackageExporter  # noqa: E402

srcdir = os.path.join(HERE, "_pkg_src")
os.makedirs(srcdir, exist_ok=True)
with open(os.path.join(srcdir, "wild_model.py"), "w") as f:
    f.write("import torch\n\nclass Net(torch.nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.fc = torch.nn.Linear(2, 3)\n\n"
            "    def forward(self, x):\n        return self.fc(x)\n")
sys.path.insert(0, srcdir)
import wild_model  # noqa: E402

torch.manual_seed(0)
with PackageExporter(p("torch_package.pt")) as pe:
    pe.extern("torch.**")
    pe.intern("wild_model")
    pe.save_pickle("model", "model.pkl", wild_model.Net())
os.remove(os.path.join(srcdir, "wild_model.py"))
import shutil  # noqa: E402

shutil.rmtree(srcdir)
try:
    torch.load(p("torch_package.pt"), weights_only=False)
    torch_error = None
except Exception as e:  # noqa: BLE001
    torch_error = f"{type(e).__name__}: {e}"[:200]
with zipfile.ZipFile(p("torch_package.pt")) as zf:
    names = zf.namelist()
expected["files"]["torch_package.pt"] = {"records": names, "torch_load_error": torch_error}

with open(p("expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")
print("wrote", ", ".join(sorted(expected["files"])))
