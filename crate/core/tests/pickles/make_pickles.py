"""Writes the pickle fixtures the Rust tests in crate/core/tests/pickle_*.rs read.

Run with the pinned oracle (torch 2.11.0, numpy), from anywhere:

    ~/.cache/torchsave/venv-torch-2.11.0/bin/python crate/core/tests/pickles/make_pickles.py

For every fixture NAME it writes NAME.pkl (the pickle bytes) and NAME.json, a flat JSON object
of strings: `canon` is the expected value in the canonical text form below (computed by Python
from the *unpickled* object, never by hand), plus per-fixture facts. Torch fixtures are the
`data.pkl` record of a real `torch.save` zip; their storages are concatenated into NAME.bin and
`storages` lists `key:offset:length` so a test can serve the real bytes without a zip reader.

Canonical form (the Rust side renders a Graph the same way, tests/common/mod.rs):
  None N | True T | False F | int i<decimal> | float f<16 hex of big-endian IEEE bits>
  complex c<re>,<im> | str s<hex of UTF-8> | bytes b<hex> | tuple (a,b) | frozenset fs{a}
  torch.Size Size(2,3) | torch.device dev(cuda:0) | torch.dtype dt(float16)
  objects with identity (list, dict, OrderedDict, set, bytearray, tensor, ndarray, objects)
  get a number at first visit (depth-first, in order) and print @n when met again:
  list [a,b] | dict {k:v,...} | OrderedDict od{k:v}|state=<dict> | set set{a} | bytearray ba<hex>
  tensor T(dtype;shape;stride;offset;rg;param;hex-or-meta[;q=scheme,params][;m=meta][;sub=cls,state])
  sparse S(layout;(components)) | ndarray nd(descr;shape;fortran;hex) | numpy scalar ns(descr;hex)
  other objects obj(module.qualname;<state>)
"""

import argparse
import io
import json
import os
import pickle
import pickletools
import struct
import zipfile
from collections import OrderedDict

import _compat_pickle
import numpy as np
import torch

OUT = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def fl(x):
    return struct.pack(">d", x).hex()


class Canon:
    def __init__(self):
        self.ids = {}
        self.keep = []  # keeps temporaries alive so id() values are never reused

    def seen(self, o):
        k = id(o)
        if k in self.ids:
            return "@%d" % self.ids[k]
        self.ids[k] = len(self.ids)
        self.keep.append(o)
        return None

    def c(self, x):
        if x is None:
            return "N"
        if x is True:
            return "T"
        if x is False:
            return "F"
        if isinstance(x, np.generic):
            return "ns(%s;%s)" % (x.dtype.str, x.tobytes().hex())
        if isinstance(x, int):
            return "i%d" % x
        if isinstance(x, float):
            return "f" + fl(x)
        if isinstance(x, complex):
            return "c%s,%s" % (fl(x.real), fl(x.imag))
        if isinstance(x, str):
            return "s" + x.encode("utf-8").hex()
        if isinstance(x, bytes):
            return "b" + x.hex()
        if isinstance(x, torch.Size):
            return "Size(%s)" % ",".join(str(d) for d in x)
        if isinstance(x, tuple):
            return "(" + ",".join(self.c(v) for v in x) + ")"
        if isinstance(x, frozenset):
            return "fs{" + ",".join(self.c(v) for v in x) + "}"
        if isinstance(x, torch.device):
            return "dev(%s)" % x
        if isinstance(x, torch.dtype):
            return "dt(%s)" % str(x)[len("torch."):]
        r = self.seen(x)
        if r:
            return r
        if isinstance(x, bytearray):
            return "ba" + bytes(x).hex()
        if isinstance(x, list):
            return "[" + ",".join(self.c(v) for v in x) + "]"
        if isinstance(x, OrderedDict):
            s = "od{" + ",".join(self.c(k) + ":" + self.c(v) for k, v in x.items()) + "}"
            if vars(x):
                s += "|state=" + self.c(vars(x))
            return s
        if isinstance(x, dict):
            return "{" + ",".join(self.c(k) + ":" + self.c(v) for k, v in x.items()) + "}"
        if isinstance(x, set):
            return "set{" + ",".join(self.c(v) for v in x) + "}"
        if isinstance(x, torch.Tensor):
            return self.tensor(x)
        if isinstance(x, np.ndarray):
            fnc = x.flags.f_contiguous and not x.flags.c_contiguous
            data = x.tobytes(order="F" if fnc else "C")
            return "nd(%s;%s;%d;%s)" % (x.dtype.str, ",".join(map(str, x.shape)), fnc, data.hex())
        return "obj(%s.%s;%s)" % (type(x).__module__, type(x).__qualname__, self.c(vars(x)))

    def tensor(self, t):
        if t.is_sparse:
            comps = (t._indices(), t._values(), t.size(), t.is_coalesced())
            return "S(sparse_coo;%s)" % self.c(comps)
        if t.is_quantized:
            raw = t.int_repr().reshape(-1).view(torch.uint8).numpy().tobytes().hex()
        elif t.device.type == "meta":
            raw = "meta"
        else:
            base = torch.empty(0, dtype=t.dtype).set_(t.untyped_storage(), t.storage_offset(), t.size(), t.stride())
            raw = base.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes().hex()
        s = "T(%s;%s;%s;%d;%d;%d;%s" % (
            str(t.dtype)[len("torch."):],
            ",".join(map(str, t.shape)),
            ",".join(map(str, t.stride())),
            t.storage_offset(),
            t.requires_grad,
            isinstance(t, torch.nn.Parameter),
            raw,
        )
        if t.is_quantized:
            scheme = str(t.qscheme())[len("torch."):]
            if scheme.startswith("per_tensor"):
                params = [t.q_scale(), t.q_zero_point()]
            else:
                params = [t.q_per_channel_scales(), t.q_per_channel_zero_points(), t.q_per_channel_axis()]
            s += ";q=%s,%s" % (scheme, ",".join(self.c(p) for p in params))
        meta = torch._C._get_tensor_metadata(t)
        if meta:
            s += ";m=" + self.c(meta)
        if type(t) not in (torch.Tensor, torch.nn.Parameter) or t.__dict__:
            cls = type(t)
            s += ";sub=%s.%s,%s" % (cls.__module__, cls.__qualname__, self.c(dict(t.__dict__)))
        return s + ")"


def canon(x):
    return Canon().c(x)


def globals_of(data):
    out = []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("GLOBAL", "INST"):
            module, name = arg.split(" ", 1)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
            full = module + "." + name
            if full not in out:
                out.append(full)
    return " ".join(out)


class _Recorder(pickle.Unpickler):
    """Records every class lookup (GLOBAL, STACK_GLOBAL, INST) in first-seen order."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.names = []

    def find_class(self, module, name):
        if (module, name) in _compat_pickle.NAME_MAPPING:
            m, n = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            m, n = _compat_pickle.IMPORT_MAPPING.get(module, module), name
        if m + "." + n not in self.names:
            self.names.append(m + "." + n)
        return super().find_class(module, name)


def globals_loaded(data):
    r = _Recorder(data)
    r.load()
    return " ".join(r.names)


def write(name, data, **facts):
    with open(os.path.join(OUT, name + ".pkl"), "wb") as f:
        f.write(data)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump({k: str(v) for k, v in facts.items()}, f, indent=1, sort_keys=True)
        f.write("\n")


# ---- plain Python values, every protocol ---------------------------------------------------

def basic_object():
    shared = ["shared"]
    selfref = [1]
    selfref.append(selfref)
    return {
        "ints": [0, 1, 255, 256, 65535, 65536, -1, -(2**31), 2**31 - 1, 2**31, 2**63 - 1, 2**63,
                 -(2**63) - 1, 2**100, -(2**100)],
        "floats": (0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 1e-300),
        "strs": ["", "ascii", "h\u00e9llo w\u00f6rld", "\u65e5\u672c\u8a9e", "\U0001f389", "line\nbreak\\back\r\x00"],
        "bytes": b"\x00\xff\x80abc",
        "empty_bytes": b"",
        "bytearray": bytearray(b"\x01\x02\xfe"),
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "tuple": (1, (2, (3,)), (), (4, 5, 6, 7)),
        "complex": 1 + 2j,
        "none": None,
        "bools": [True, False],
        "shared": [shared, shared, (shared,)],
        "selfref": selfref,
        "long_list": list(range(1005)),
        "big_dict": {i: str(i) for i in range(1002)},
    }


for proto in range(6):
    data = pickle.dumps(basic_object(), protocol=proto)
    write("basic_p%d" % proto, data, canon=canon(pickle.loads(data)), protocol=proto if proto >= 2 else 0,
          globals=globals_loaded(data), consumed=len(data))


# ---- a Python 2 pickle, hand-built from pickletools-documented opcodes ----------------------

py2 = b"".join([
    b"\x80\x02",                      # PROTO 2
    b"(",                             # MARK
    b"U\x04caf\xe9",                  # SHORT_BINSTRING, latin-1 bytes (invalid UTF-8)
    b"U\x03h\xc3\xa9",                # SHORT_BINSTRING, valid UTF-8
    b"T\x03\x00\x00\x00abc",          # BINSTRING
    b"S'a\\x41\\n'\n",               # STRING with escapes
    b"I01\n", b"I00\n", b"I-42\n",    # INT: True, False, -42
    b"L12345678901234567890L\n",      # LONG (py2 long)
    b"F2.5\n",                        # FLOAT
    b"Vcaf\\u00e9\n",                 # UNICODE (raw-unicode-escape)
    b"c__builtin__\nset\n",           # GLOBAL with the py2 module name
    b"(I1\nI2\nl\x85R",               # set([1, 2])
    b"t",                             # TUPLE
    b".",                             # STOP
])


def py2_expected(enc):
    if enc in ("latin1", "bytes"):
        return canon(pickle.loads(py2, encoding=enc))

    def fix(v):  # our Utf8 mode: UTF-8, falling back to latin-1
        if isinstance(v, bytes):
            try:
                return v.decode("utf-8")
            except UnicodeDecodeError:
                return v.decode("latin-1")
        return v
    return canon(tuple(fix(v) for v in pickle.loads(py2, encoding="bytes")))


write("py2_strings", py2, canon_utf8=py2_expected("utf8"), canon_latin1=py2_expected("latin1"),
      canon_bytes=py2_expected("bytes"), globals=globals_of(py2))


# ---- data.pkl from real torch.save zips ------------------------------------------------------

def torch_fixture(name, obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    raw = buf.getvalue()
    z = zipfile.ZipFile(io.BytesIO(raw))
    names = z.namelist()
    folder = names[0].split("/")[0]
    data = z.read(folder + "/data.pkl")
    blob = b""
    entries = []
    for n in names:
        if n.startswith(folder + "/data/"):
            key = n[len(folder + "/data/"):]
            b = z.read(n)
            entries.append("%s:%d:%d" % (key, len(blob), len(b)))
            blob += b
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(blob)
    try:
        torch.load(io.BytesIO(raw), weights_only=True)
        wo = 1
    except Exception:
        wo = 0
    loaded = torch.load(io.BytesIO(raw), weights_only=False)
    write(name, data, canon=canon(loaded), globals=globals_of(data), storages=",".join(entries),
          weights_only_ok=wo)


model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 2), torch.nn.BatchNorm2d(2), torch.nn.Linear(2, 2))
torch_fixture("torch_state_dict", model.state_dict())

base = torch.arange(6, dtype=torch.float32)
tied = torch.tensor([7, 8], dtype=torch.int64)
attr = torch.tensor([1.0, 2.0])
attr.foo = "bar"
torch_fixture("torch_weights", {
    "param": torch.nn.Parameter(torch.arange(4.0)),
    "size": torch.Size([2, 3]),
    "device": torch.device("cuda", 0),
    "device_cpu": torch.device("cpu"),
    "dtype": torch.float16,
    "bf16": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
    "u16": torch.tensor([1, 65535], dtype=torch.uint16),
    "c64conj": torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64).conj(),
    "attr": attr,
    "base": base,
    "view": base[1:4],
    "strided": base[::2],
    "transposed": base.reshape(2, 3).t(),
    "tied_a": tied,
    "tied_b": tied,
    "scalar": torch.tensor(3.25, dtype=torch.float64),
    "bool": torch.tensor([True, False, True]),
    "empty": torch.zeros(0, 3),
    "bytes": b"\x00\x01\xff",
    "set": {1, 2},
    "complex": 2 - 3j,
    "meta": torch.empty(2, 3, device="meta"),
})
torch_fixture("torch_numpy_namespace", {
    "np_arr": np.arange(6, dtype=np.float32).reshape(2, 3),
    "np_f_order": np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    "np_bool": np.array([True, False]),
    "np_scalar": np.float64(2.5),
    "np_int": np.int32(-7),
    "args": argparse.Namespace(lr=0.1, name="x"),
})
torch_fixture("torch_quantized", {
    "per_tensor": torch.quantize_per_tensor(torch.tensor([1.0, 2.0, 3.5]), 0.5, 1, torch.quint8),
    "per_channel": torch.quantize_per_channel(torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
                                              torch.tensor([0.1, 0.2], dtype=torch.float64),
                                              torch.tensor([0, 1]), 0, torch.qint8),
})
torch_fixture("torch_sparse", {
    "coo": torch.sparse_coo_tensor(torch.tensor([[0, 1, 2], [2, 0, 1]]), torch.tensor([1.0, 2.0, 3.0]), (3, 3)),
})


# ---- malicious and malformed pickles ---------------------------------------------------------

class Outer:
    class Inner:
        pass


class Posix:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class Eval:
    def __reduce__(self):
        return (eval, ("1+1",))


def bu(s):  # BINUNICODE
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


evil = {
    # GLOBAL os system, REDUCE: what a hand-written exploit looks like
    "evil_os_system": b"\x80\x02cos\nsystem\n" + bu("echo pwned") + b"\x85R.",
    # what pickle writes for os.system on Linux (posix.system)
    "evil_posix_system": pickle.dumps(Posix(), protocol=2),
    "evil_eval": pickle.dumps(Eval(), protocol=2),
    # subprocess.Popen(['ls']) via NEWOBJ
    "evil_popen_newobj": b"\x80\x02csubprocess\nPopen\n]" + bu("ls") + b"a\x85\x81.",
    "safe_global_only": pickle.dumps(argparse.Namespace(a=1), protocol=2),
    "deep_nesting": b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".",
    "memo_out_of_range": b"\x80\x02]q\x00h\x05.",
    "huge_binunicode": b"\x80\x02X\xf0\xff\xff\xffabc.",
    "truncated": pickle.dumps(basic_object(), protocol=2)[:300],
    "unknown_opcode": b"\x80\x02\xff.",
    "mark_underflow": b"\x80\x02]K\x01e.",
    "pop_below_mark": b"\x80\x02K\x01(\x85.",
    "no_stop": b"\x80\x02K\x01",
    "frame_p4_weights_only": pickle.dumps([1, 2], protocol=4),
    "protocol_6": b"\x80\x06N.",
    "getattr_nested": pickle.dumps(Outer.Inner, protocol=2),
}
for name, data in evil.items():
    write(name, data, globals=globals_of(data) if name not in ("truncated", "unknown_opcode", "huge_binunicode",
                                                                "no_stop", "protocol_6") else "")
print("wrote fixtures to", OUT)
