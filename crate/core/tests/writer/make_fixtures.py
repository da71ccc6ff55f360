"""Writes the byte-identity fixtures for the Rust writer (crate/core/tests/writer/main.rs).

For each case, real torch (2.11.0, the project venv) saves an object with
`torch.save(obj, BytesIO)` into `fixtures/<case>.pt`, and this script writes
`fixtures/<case>.recipe`: the same object as a token stream the Rust test turns into a
`Graph` (what our reader would produce). The test saves that graph and compares the archive
byte for byte with torch's, except the 40 digits of `.data/serialization_id` (and their
CRC), which only libtorch can produce.

Recipe tokens (whitespace separated; text is hex UTF-8, `-` for empty):
  N T F | i <int> | f <f64 bits hex> | c <re bits> <im bits> | s <hex> | b <hex>
  @ <id>                             reference to a node defined earlier
  L|U|S|Z <id> <n> items...          list, tuple, set, frozenset
  D <id> <n> (k v)...                dict
  O <id> <n> (k v)... <0|1 state>    OrderedDict (+ instance __dict__)
  A <id> <hex>                       bytearray
  Y <id> <n> dims...                 torch.Size
  V <id> <hex>                       torch.device (str form)
  d <id> <dtype>                     torch dtype
  G <id> <module hex> <name hex>     class/function
  t <id> <storage> <dtype> <ndim> sizes... strides... <offset> <rg> <param>
    <0|1 metadata> <0|1 param_state> <0|1 module name state>       dense tensor
  P <id> <kind r|n> <module> <name> <args> <0|1 state> <nlist> items <ndict> (k v)...
  Q <id> <module> <descr> <fortran> <ndim> dims <hex data>        numpy array
  q <id> <module> <descr> <hex data>                               numpy scalar
Header: `storages <n>` then per storage `<dtype> <untyped> <numel> <location hex> <data hex>`.

Run: ~/.cache/torchsave/venv-torch-2.11.0/bin/python crate/core/tests/writer/make_fixtures.py
"""
import collections
import copyreg
import io
import os
import struct
import sys

import numpy as np
import torch
from torch import nn

assert torch.__version__.startswith("2.11.0"), torch.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


def hx(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return b.hex() if b else "-"


def fbits(x):
    return struct.pack(">d", x).hex()


def dname(dt):
    return str(dt).replace("torch.", "")


class Recipe:
    def __init__(self):
        self.toks = []
        self.ids = {}
        self.keep = []  # keep objects alive so ids stay unique
        self.storages = {}
        self.storage_list = []

    def new_id(self, obj):
        i = len(self.ids)
        self.ids[id(obj)] = i
        self.keep.append(obj)
        return i

    def storage(self, t):
        us = t.untyped_storage()
        key = us._cdata
        if key not in self.storages:
            v3 = t.dtype in torch.storage._new_dtypes()
            dt = torch.uint8 if v3 else t.dtype
            nbytes = us.nbytes()
            es = torch._utils._element_size(dt)
            data = bytes(us.cpu()) if nbytes else b""
            loc = torch.serialization.location_tag(us)
            self.storages[key] = len(self.storage_list)
            self.storage_list.append(f"{dname(dt)} {int(v3)} {nbytes // es} {hx(loc)} {hx(data)}")
        return self.storages[key]

    def opt(self, v):
        if v is None or (isinstance(v, (dict, tuple)) and not v):
            self.toks.append("0")
        else:
            self.toks.append("1")
            self.walk(v)

    def walk(self, o):
        T = self.toks
        if o is None:
            T.append("N")
            return
        if o is True or o is False:
            T.append("T" if o else "F")
            return
        if type(o) is int:
            T += ["i", str(o)]
            return
        if type(o) is float:
            T += ["f", fbits(o)]
            return
        if type(o) is complex:
            T += ["c", fbits(o.real), fbits(o.imag)]
            return
        if type(o) is str:
            T += ["s", hx(o)]
            return
        if type(o) is bytes:
            T += ["b", hx(o)]
            return
        if id(o) in self.ids:
            T += ["@", str(self.ids[id(o)])]
            return
        if isinstance(o, torch.dtype):
            T += ["d", str(self.new_id(o)), dname(o)]
            return
        if isinstance(o, torch.device):
            T += ["V", str(self.new_id(o)), hx(str(o))]
            return
        if isinstance(o, torch.Size):
            T += ["Y", str(self.new_id(o)), str(len(o))] + [str(d) for d in o]
            return
        if isinstance(o, torch.Tensor):
            self.tensor(o)
            return
        if isinstance(o, np.ndarray):
            mod = type(o).__reduce_ex__(o, 2)[0].__module__
            T += ["Q", str(self.new_id(o)), hx(mod), hx(o.dtype.str), str(int(np.isfortran(o))), str(o.ndim)]
            T += [str(d) for d in o.shape] + [hx(o.tobytes(order="A"))]
            return
        if isinstance(o, np.generic):
            mod = o.__reduce_ex__(2)[0].__module__
            T += ["q", str(self.new_id(o)), hx(mod), hx(o.dtype.str), hx(o.tobytes())]
            return
        if type(o) is collections.OrderedDict:
            T += ["O", str(self.new_id(o)), str(len(o))]
            for k, v in o.items():
                self.walk(k)
                self.walk(v)
            self.opt(o.__dict__ or None)
            return
        kinds = {list: "L", tuple: "U", set: "S", frozenset: "Z"}
        if type(o) in kinds:
            i = self.new_id(o)
            T += [kinds[type(o)], str(i), str(len(o))]
            for v in o:
                self.walk(v)
            return
        if type(o) is dict:
            T += ["D", str(self.new_id(o)), str(len(o))]
            for k, v in o.items():
                self.walk(k)
                self.walk(v)
            return
        if type(o) is bytearray:
            T += ["A", str(self.new_id(o)), hx(bytes(o))]
            return
        if isinstance(o, type):
            T += ["G", str(self.new_id(o)), hx(o.__module__), hx(o.__qualname__)]
            return
        # Any other object: what protocol 2 reduces it to.
        r = o.__reduce_ex__(2)
        func, args = r[0], r[1]
        state = r[2] if len(r) > 2 else None
        li = list(r[3]) if len(r) > 3 and r[3] is not None else []
        di = list(r[4]) if len(r) > 4 and r[4] is not None else []
        i = self.new_id(o)
        if func is copyreg.__newobj__:
            cls, args, kind = args[0], args[1:], "n"
        else:
            cls, kind = func, "r"
        T += ["P", str(i), kind, hx(cls.__module__), hx(cls.__qualname__)]
        self.walk(args)
        self.opt(state)
        T.append(str(len(li)))
        for v in li:
            self.walk(v)
        T.append(str(len(di)))
        for k, v in di:
            self.walk(k)
            self.walk(v)

    def tensor(self, t):
        T = self.toks
        i = self.new_id(t)
        is_param = isinstance(t, nn.Parameter)
        sid = self.storage(t)
        T += ["t", str(i), str(sid), dname(t.dtype), str(t.dim())]
        T += [str(d) for d in t.shape] + [str(s) for s in t.stride()]
        T += [str(t.storage_offset()), str(int(t.requires_grad)), str(int(is_param))]
        self.opt(torch._utils.get_tensor_metadata(t) or None)
        state = torch._utils._get_obj_state(t)
        if is_param:
            self.opt(state or None)
            T.append("0")
        else:
            T.append("0")
            if type(t) is torch.Tensor and not state:
                T.append("0")
            else:
                T += ["1", hx(type(t).__module__), hx(type(t).__qualname__)]
                self.walk(state)


def emit(name, obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(os.path.join(OUT, name + ".pt"), "wb") as f:
        f.write(buf.getvalue())
    r = Recipe()
    r.walk(obj)
    with open(os.path.join(OUT, name + ".recipe"), "w") as f:
        f.write(f"storages {len(r.storage_list)}\n")
        for s in r.storage_list:
            f.write(s + "\n")
        f.write(" ".join(r.toks) + "\n")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(4, 3))

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = Net()
    x = torch.randn(2, 3, 6, 6)
    emit("state_dict", model.state_dict())

    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):
        sgd.zero_grad()
        model(x).sum().backward()
        sgd.step()
    emit("sgd_state", sgd.state_dict())

    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        adam.zero_grad()
        model(x).sum().backward()
        adam.step()
    emit("adam_state", adam.state_dict())

    loss = model(x).sum()
    emit("checkpoint", {
        "epoch": 5,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": sgd.state_dict(),
        "loss": loss.item(),
        "loss_tensor": loss.detach(),
    })

    dtypes = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64,
              torch.complex128, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
              torch.bool, torch.uint16, torch.uint32, torch.uint64, torch.float8_e5m2,
              torch.float8_e4m3fn, torch.float8_e5m2fnuz, torch.float8_e4m3fnuz, torch.complex32]
    every = {}
    for dt in dtypes:
        base = torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2
        every[dname(dt)] = base.to(dt) if dt != torch.complex32 else base.to(torch.complex64).to(dt)
    every["empty"] = torch.empty(0, 3)
    every["scalar"] = torch.tensor(3.5)
    emit("every_dtype", every)

    base = torch.arange(10, dtype=torch.float32)
    m = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    c = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    p = nn.Parameter(torch.ones(3))
    attr = torch.zeros(2)
    attr.foo = "bar"
    emit("views", {
        "base": base, "slice": base[2:5], "strided": base[::2], "same": base,
        "t": m.t(), "expand": torch.ones(1, 3).expand(4, 3), "conj": c.conj(), "conj2": c[1:].conj(),
        "param": p, "param_again": p, "attr": attr,
    })

    shared = {"k": [1, 2]}
    cyc = []
    cyc.append(cyc)
    misc = {
        "bytes": [b"", b"a", b"abc\xff\x00", b"a"],
        "bytearray": [bytearray(b"xy\x80"), bytearray()],
        "set": {1, 2, 3}, "set_empty": set(), "frozenset": frozenset([7]),
        "complex": complex(1.5, -2.0),
        "tuples": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((1, (2,)), "x")),
        "ints": [0, 255, 256, 65535, 65536, -1, -129, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
                 2**63, -2**63 - 1, 2**70, -2**200, 10**600],
        "floats": [0.0, -0.0, 1.5, float("inf"), 1e-300],
        "flags": [None, True, False],
        "text": ["", "é", "日本語", "a" * 300, "storage", "cpu", "0"],
        "long_list": list(range(1001)),
        "dict1000": {i: i for i in range(1000)},
        # Keys like str(0) would be fresh 1-char strings in CPython while the literal "0" above
        # is the shared singleton: a case where memoizing strings by value differs (see
        # pickler.rs); keys with a prefix avoid it.
        "od1001": collections.OrderedDict((f"k{i}", i) for i in range(1001)),
        "shared": [shared, shared],
        "cycle": cyc,
        "size": torch.Size([2, 3]),
        "devices": [torch.device("cpu"), torch.device("cuda", 1)],
        "dtypes": [torch.float16, torch.float16, torch.int64],
        "classes": [collections.OrderedDict, torch.nn.Linear],
        "many": [str(i) + "x" for i in range(300)],
    }
    emit("misc", misc)

    emit("numpy", {"a": np.arange(3, dtype=np.float32), "b": np.arange(4, dtype=np.int64).reshape(2, 2),
                   "s": np.float64(1.5), "i": np.int64(3), "bool": np.array([True, False])})

    torch.manual_seed(1)
    emit("module", nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)))


if __name__ == "__main__":
    main()
