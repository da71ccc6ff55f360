#!/usr/bin/env python3
"""The oracle: real PyTorch says what a checkpoint file contains, as JSON.

Usage (prints exactly one JSON object on stdout; exit 0 on success, 2 on a load failure with
the Python error on stderr):

  oracle.py describe FILE [--weights-only 0|1] [--map-location cpu]
  oracle.py save-check FILE        load with weights_only=True; {"ok": true} or
                                   {"ok": false, "error": "<ExceptionType>", "message": "..."}
  oracle.py inspect-json FILE      the `torchsave inspect FILE --json --sha256` schema
  oracle.py jit FILE [--attrs a,b]  torch.jit.load(FILE): see jit_describe
  oracle.py batch                  stdin: a JSON list of argument lists (["describe", F, ...]);
                                   stdout: a JSON list of {"ok": true, "result": ...} or
                                   {"ok": false, "error": "..."}: one torch import for many calls

`describe` defaults to --weights-only 1 (torch's own default since 2.6) and no map_location.
The fixture nn.Module classes (fixture_classes.py) are installed in __main__ first, so whole
pickled models written by make_fixtures.py load with --weights-only 0.

describe output
---------------
  {"oracle": 1, "torch": "2.11.0", "format": "zip"|"legacy"|"tar"|"pickle",
   "weights_only": bool, "map_location": str|null, "value": NODE}

A NODE is a JSON object with a tag "t". Every Python value maps to exactly one node, so a
TS test can build the same tree from torchsave's loaded values and deep-compare:

  {"t":"none"}                     None
  {"t":"bool","v":true}            bool
  {"t":"int","v":"123"}            int, ALWAYS as a decimal string (bigints survive)
  {"t":"float","v":"nan","bits":"7ff8000000000000"}
                                   float: v = Python repr; bits = IEEE-754 binary64, big-endian
                                   hex (compare bits: it keeps -0.0, inf and nan exact)
  {"t":"complex","re":BITS,"im":BITS,"repr":"(1+2j)"}    BITS as in float
  {"t":"str","v":"..."}            str (any Unicode)
  {"t":"bytes","hex":"00ff"}       bytes;  {"t":"bytearray","hex":...} bytearray
  {"t":"list","items":[NODE...]}   list;   {"t":"tuple","items":[...]} tuple
  {"t":"set","items":[...]}        set / {"t":"frozenset",...}: items sorted by their JSON text
                                   (json.dumps(node, sort_keys=True, separators=(",",":")))
  {"t":"dict","items":[[K,V]...]}  dict, insertion order, keys are NODEs (int keys stay ints)
  {"t":"OrderedDict","items":[...],"metadata":NODE?,"attrs":NODE?}
                                   collections.OrderedDict; "metadata" = the `_metadata`
                                   attribute state_dicts carry (absent when there is none);
                                   "attrs" = any other instance attributes (a dict NODE)
  dict subclasses other than OrderedDict: {"t":"dict","class":"collections.Counter",...}
  {"t":"Size","v":[2,3]}           torch.Size
  {"t":"device","v":"cuda:0"}      torch.device (str(device))
  {"t":"dtype","v":"float16"}      torch.dtype (name without "torch.")
  {"t":"layout","v":"sparse_coo"}  torch.layout;  {"t":"qscheme","v":"per_tensor_affine"}
  {"t":"global","v":"module.qualname"}   a class or function object held as a value
  {"t":"ndarray","dtype":"<f4","shape":[2,3],"fortran_order":false,"sha256":HEX}
                                   numpy array; sha256 over its values in C order,
                                   little-endian (object arrays: "items": NODE of .tolist())
  {"t":"npscalar","dtype":"<f8","hex":"000000000000f83f"}  numpy scalar, its LE bytes
  {"t":"object","class":"argparse.Namespace","state":NODE}
                                   any other object; state = its __dict__ as a dict NODE
                                   (nn.Module: the full pickled __dict__, hooks included)
  {"t":"storage","dtype":"float32","nbytes":n,"device":"cpu","storage":ID,"sha256":HEX}
                                   a bare (Typed|Untyped)Storage saved as a value
  {"t":"Tensor"|"Parameter", ...}  see below
  {"t":"unknown","class":...,"repr":...}  anything the oracle cannot describe (never expected)

Tensor / Parameter node fields:
  obj            small int per distinct Python tensor object, numbered in first-visit order
                 of a depth-first walk (the same tensor object under two keys -> same obj;
                 tied but distinct Parameters -> different obj, same storage)
  class          only for subclasses: "module.qualname"
  dtype          torch dtype name without "torch." (qint8, quint8, qint32 for quantized)
  shape          list of ints
  stride, storage_offset   ints (elements); null for sparse layouts
  storage        small int per distinct storage (numbered like obj, by the storage's
                 identity `untyped_storage()._cdata`), so views and tied weights are checked;
                 null for sparse
  storage_nbytes byte size of that storage; null for sparse
  requires_grad  bool
  device         str(tensor.device)
  layout         "strided" | "sparse_coo" | ...
  sha256         hex sha256 over the tensor's LOGICAL values as a contiguous C-order
                 little-endian buffer: bool 1 byte each; float16/bfloat16 2 bytes; complex
                 (re, im) pairs; conj/neg views hashed after resolving (their true values);
                 quantized tensors hash their integer representation (int_repr()); sparse
                 tensors hash their dense values (to_dense())
  conj, neg      present (true) only for lazily conjugated / negated views
  quant          quantized only: {"qscheme": "per_tensor_affine", "scale": FLOAT NODE,
                 "zero_point": int} or {"qscheme": "per_channel_affine", "axis": n,
                 "scales": TENSOR NODE, "zero_points": TENSOR NODE}
  indices, values, is_coalesced   sparse_coo only: TENSOR NODEs of _indices()/_values()
  attrs          Python attributes set on the tensor (t.__dict__), as a dict NODE, when any

inspect-json output (ARCHITECTURE.md):
  {"format": ..., "tensors": [{"path": [...], "dtype", "shape", "stride", "storage_offset",
   "requires_grad", "sha256"[, "layout"]}], "arrays": [{"kind": "numpy", "path", "dtype",
   "shape", "sha256"}], "globals": [...], "weights_only_ok": bool}
  - arrays: numpy ndarrays met by the same walk (dtype = numpy's dtype.name, sha256 over
    np.ascontiguousarray(a) little-endian bytes, null for object arrays)
  - tensors in depth-first order, one entry per occurrence (a tensor object reachable under
    two keys is listed twice); path steps are dict keys (str or int; other key types as their
    Python repr), list/tuple indices, and for objects the keys of their __dict__;
    Parameters count as tensors; tensors inside other tensors (quantizer params, sparse
    parts, tensor attributes) are not listed; "layout" only for non-strided tensors
  - globals: every GLOBAL / STACK_GLOBAL of the object pickle (zip: data.pkl; legacy: the
    4th pickle; tar: member "pickle") as "module.name", exactly as written in the file
    (Python 2 names such as "__builtin__.set" are NOT mapped), deduplicated, first-seen order
  - the value walked is what torch.load(weights_only=True, map_location="cpu") returns, or,
    when that fails, torch.load(weights_only=False, map_location="cpu")
"""
import argparse
import collections
import hashlib
import io
import json
import os
import pickletools
import struct
import sys
import tarfile
import types
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import fixture_classes  # noqa: E402

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _qualname(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _float_node(x):
    x = float(x)
    return {"t": "float", "v": repr(x), "bits": struct.pack(">d", x).hex()}


def _canon(node):
    return json.dumps(node, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def tensor_values_bytes(t):
    """The logical values of `t` as a contiguous C-order little-endian buffer."""
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.is_quantized:
        t = t.int_repr()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    t = t.cpu().contiguous()
    if t.numel() == 0:
        return b""
    flat = t.reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    data = flat.view(torch.uint8).numpy().tobytes()
    if sys.byteorder != "little" and flat.element_size() > 1:
        size = flat.element_size() if not flat.is_complex() else flat.element_size() // 2
        data = b"".join(data[i : i + size][::-1] for i in range(0, len(data), size))
    return data


def tensor_sha256(t):
    return hashlib.sha256(tensor_values_bytes(t)).hexdigest()


def ndarray_sha256(a):
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return hashlib.sha256(a.tobytes(order="C")).hexdigest()


class Describer:
    def __init__(self):
        self.storages = {}
        self.objs = {}
        # Holding every described object keeps id() unique: torch hands out temporaries
        # (sparse _indices()/_values(), per-channel scales) whose ids would be reused.
        self.keep = []

    def _storage_id(self, key):
        return self.storages.setdefault(key, len(self.storages))

    def _obj_id(self, obj):
        # Keyed by id(): every described object stays alive in the loaded tree meanwhile.
        self.keep.append(obj)
        return self.objs.setdefault(id(obj), len(self.objs))

    def node(self, v):
        if v is None:
            return {"t": "none"}
        if isinstance(v, bool):
            return {"t": "bool", "v": bool(v)}
        if isinstance(v, np.generic):
            return {"t": "npscalar", "dtype": v.dtype.str, "hex": v.astype(v.dtype.newbyteorder("<")).tobytes().hex()}
        if isinstance(v, np.ndarray):
            n = {
                "t": "ndarray",
                "dtype": v.dtype.str,
                "shape": list(v.shape),
                "fortran_order": bool(v.flags.f_contiguous and not v.flags.c_contiguous),
            }
            if v.dtype.hasobject:
                n["items"] = self.node(v.tolist())
            else:
                n["sha256"] = ndarray_sha256(v)
            return n
        if isinstance(v, int):
            return {"t": "int", "v": str(v)}
        if isinstance(v, float):
            return _float_node(v)
        if isinstance(v, complex):
            return {
                "t": "complex",
                "re": struct.pack(">d", v.real).hex(),
                "im": struct.pack(">d", v.imag).hex(),
                "repr": repr(v),
            }
        if isinstance(v, str):
            return {"t": "str", "v": v}
        if isinstance(v, bytearray):
            return {"t": "bytearray", "hex": bytes(v).hex()}
        if isinstance(v, bytes):
            return {"t": "bytes", "hex": v.hex()}
        if isinstance(v, torch.Tensor):
            return self.tensor(v)
        if isinstance(v, torch.Size):
            return {"t": "Size", "v": [int(d) for d in v]}
        if isinstance(v, torch.device):
            return {"t": "device", "v": str(v)}
        if isinstance(v, torch.dtype):
            return {"t": "dtype", "v": str(v).removeprefix("torch.")}
        if isinstance(v, torch.layout):
            return {"t": "layout", "v": str(v).removeprefix("torch.")}
        if isinstance(v, torch.qscheme):
            return {"t": "qscheme", "v": str(v).removeprefix("torch.")}
        if isinstance(v, (torch.storage.TypedStorage, torch.UntypedStorage)):
            u = v._untyped_storage if isinstance(v, torch.storage.TypedStorage) else v
            dtype = v.dtype if isinstance(v, torch.storage.TypedStorage) else torch.uint8
            return {
                "t": "storage",
                "dtype": str(dtype).removeprefix("torch."),
                "nbytes": u.nbytes(),
                "device": str(u.device),
                "storage": self._storage_id(u._cdata),
                "sha256": hashlib.sha256(bytes(u.cpu())).hexdigest(),
            }
        if isinstance(v, tuple):
            return {"t": "tuple", "items": [self.node(x) for x in v]}
        if isinstance(v, list):
            return {"t": "list", "items": [self.node(x) for x in v]}
        if isinstance(v, (set, frozenset)):
            items = sorted((self.node(x) for x in v), key=_canon)
            return {"t": "frozenset" if isinstance(v, frozenset) else "set", "items": items}
        if isinstance(v, dict):
            items = [[self.node(k), self.node(x)] for k, x in v.items()]
            if isinstance(v, collections.OrderedDict):
                n = {"t": "OrderedDict", "items": items}
                attrs = dict(getattr(v, "__dict__", {}))
                if "_metadata" in attrs:
                    n["metadata"] = self.node(attrs.pop("_metadata"))
                if attrs:
                    n["attrs"] = self.node(attrs)
                return n
            n = {"t": "dict", "items": items}
            if type(v) is not dict:
                n["class"] = _qualname(type(v))
            return n
        if isinstance(v, (type, types.FunctionType, types.BuiltinFunctionType)):
            return {"t": "global", "v": _qualname(v)}
        if hasattr(v, "__dict__"):
            return {"t": "object", "class": _qualname(type(v)), "state": self.node(dict(v.__dict__))}
        return {"t": "unknown", "class": _qualname(type(v)), "repr": repr(v)}

    def tensor(self, t):
        n = {"t": "Parameter" if isinstance(t, torch.nn.Parameter) else "Tensor", "obj": self._obj_id(t)}
        if type(t) not in (torch.Tensor, torch.nn.Parameter):
            n["class"] = _qualname(type(t))
        n["dtype"] = str(t.dtype).removeprefix("torch.")
        n["shape"] = [int(d) for d in t.shape]
        if t.layout == torch.strided:
            n["stride"] = [int(s) for s in t.stride()]
            n["storage_offset"] = int(t.storage_offset())
            st = t.untyped_storage()
            n["storage"] = self._storage_id(st._cdata)
            n["storage_nbytes"] = int(st.nbytes())
        else:
            n["stride"] = None
            n["storage_offset"] = None
            n["storage"] = None
            n["storage_nbytes"] = None
        n["requires_grad"] = bool(t.requires_grad)
        n["device"] = str(t.device)
        n["layout"] = str(t.layout).removeprefix("torch.")
        n["sha256"] = None if t.device.type == "meta" else tensor_sha256(t)
        if t.is_conj():
            n["conj"] = True
        if t.is_neg():
            n["neg"] = True
        if t.is_quantized:
            qs = t.qscheme()
            q = {"qscheme": str(qs).removeprefix("torch.")}
            if qs in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                q["scale"] = _float_node(t.q_scale())
                q["zero_point"] = int(t.q_zero_point())
            else:
                q["axis"] = int(t.q_per_channel_axis())
                q["scales"] = self.tensor(t.q_per_channel_scales())
                q["zero_points"] = self.tensor(t.q_per_channel_zero_points())
            n["quant"] = q
        if t.layout == torch.sparse_coo:
            n["indices"] = self.tensor(t._indices())
            n["values"] = self.tensor(t._values())
            n["is_coalesced"] = bool(t.is_coalesced())
        attrs = dict(getattr(t, "__dict__", {}))
        if attrs:
            n["attrs"] = self.node(attrs)
        return n


def describe_value(value):
    return Describer().node(value)


# --- container sniffing and the static GLOBAL scan ---------------------------------------


def detect_format(path):
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            with tarfile.open(path, mode="r:") as tar:
                if "pickle" in tar.getnames():
                    return "tar"
    except (tarfile.TarError, OSError):
        pass
    try:
        with open(path, "rb") as f:
            magic = _ints_only_load(f)
        if magic == LEGACY_MAGIC:
            return "legacy"
    except Exception:
        pass
    return "pickle"


def _ints_only_load(f):
    class NoGlobals(__import__("pickle").Unpickler):
        def find_class(self, module, name):
            raise ValueError(f"global {module}.{name} while sniffing")

    return NoGlobals(f).load()


def object_pickle_bytes(path, fmt):
    """The pickle that holds the saved object (where GLOBALs of interest live)."""
    if fmt == "zip":
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            folder = names[0].split("/", 1)[0]
            return z.read(f"{folder}/data.pkl")
    if fmt == "tar":
        with tarfile.open(path, mode="r:") as tar:
            f = tar.extractfile("pickle")
            return f.read() if f else b""
    with open(path, "rb") as f:
        data = f.read()
    if fmt == "pickle":
        return data
    pos = 0
    for _ in range(3):  # magic, protocol version, sys_info
        pos = _end_of_pickle(data, pos)
    end = _end_of_pickle(data, pos)
    return data[pos:end]


def _end_of_pickle(data, pos):
    stream = io.BytesIO(data)
    stream.seek(pos)
    for op, _arg, p in pickletools.genops(stream):
        if op.name == "STOP":
            return p + 1
    raise ValueError("pickle without STOP")


def scan_globals(pkl):
    seen = []
    memo = {}
    recent = []  # values pushed by recent opcodes: str for string pushes, None otherwise
    for op, arg, _pos in pickletools.genops(pkl):
        name = op.name
        if name in ("GLOBAL", "INST"):
            full = arg.replace(" ", ".")
            recent.append(None)
        elif name == "STACK_GLOBAL":
            mod, qual = (recent[-2] if len(recent) > 1 else None), (recent[-1] if recent else None)
            full = f"{mod}.{qual}"
            recent.append(None)
        else:
            full = None
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"):
                recent.append(arg if isinstance(arg, str) else None)
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = recent[-1] if recent else None
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                recent.append(memo.get(arg))
            else:
                recent.append(None)
        if full is not None and full not in seen:
            seen.append(full)
    return seen


# --- loading ----------------------------------------------------------------------------


def load(path, weights_only, map_location=None):
    return torch.load(path, weights_only=weights_only, map_location=map_location)


def inspect_json(path):
    fmt = detect_format(path)
    try:
        value = load(path, True, "cpu")
        ok = True
    except Exception:
        value = load(path, False, "cpu")
        ok = False
    tensors = []
    arrays = []

    def walk(v, p):
        if isinstance(v, torch.Tensor):
            e = {
                "path": p,
                "dtype": str(v.dtype).removeprefix("torch."),
                "shape": [int(x) for x in v.shape],
                "stride": [int(s) for s in v.stride()] if v.layout == torch.strided else None,
                "storage_offset": int(v.storage_offset()) if v.layout == torch.strided else None,
                "requires_grad": bool(v.requires_grad),
                "sha256": tensor_sha256(v),
            }
            if v.layout != torch.strided:
                e["layout"] = str(v.layout).removeprefix("torch.")
            tensors.append(e)
            return
        if isinstance(v, np.ndarray):
            arrays.append({
                "kind": "numpy",
                "path": p,
                "dtype": v.dtype.name,
                "shape": [int(x) for x in v.shape],
                "sha256": None if v.dtype.hasobject else ndarray_sha256(v),
            })
            return
        if isinstance(v, (str, bytes, bytearray, int, float, complex, np.generic)) or v is None:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, p + [k if isinstance(k, (str, int)) and not isinstance(k, bool) else repr(k)])
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                walk(x, p + [i])
        elif hasattr(v, "__dict__") and not isinstance(v, type):
            for k, x in v.__dict__.items():
                walk(x, p + [k])

    walk(value, [])
    return {
        "format": fmt,
        "tensors": tensors,
        "arrays": arrays,
        "globals": scan_globals(object_pickle_bytes(path, fmt)),
        "weights_only_ok": ok,
    }


def describe(path, weights_only=True, map_location=None):
    value = load(path, weights_only, map_location)
    return {
        "oracle": 1,
        "torch": torch.__version__.split("+", 1)[0],
        "format": detect_format(path),
        "weights_only": bool(weights_only),
        "map_location": map_location,
        "value": describe_value(value),
    }


def jit_describe(path, attrs=()):
    """torch.jit.load(path) as data: {"state_dict": [[key, TENSOR NODE]...] (state_dict()
    order), "modules": [{"name": dotted ("" for the root), "qualname", "training",
    "parameters", "buffers", "children": names (recurse=False)}...] (root first, depth
    first), "attributes": [[name, NODE]...] of the root for the names asked, "extra_files":
    {name: hex} (every extra/ record of the zip), "code": the root's .code}."""
    names = []
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if "/extra/" in n:
                names.append(n.split("/extra/", 1)[1])
    extra = {n: "" for n in names}
    m = torch.jit.load(path, map_location="cpu", _extra_files=extra)

    def mods(mod, name):
        out = [{
            "name": name,
            "qualname": mod._c._type().qualified_name(),
            "training": bool(mod.training),
            "parameters": [n for n, _ in mod.named_parameters(recurse=False)],
            "buffers": [n for n, _ in mod.named_buffers(recurse=False)],
            "children": [n for n, _ in mod.named_children()],
        }]
        for n, c in mod.named_children():
            out += mods(c, f"{name}.{n}" if name else n)
        return out

    return {
        "state_dict": [[k, describe_value(v)] for k, v in m.state_dict().items()],
        "modules": mods(m, ""),
        "attributes": [[a, describe_value(getattr(m, a))] for a in attrs],
        "extra_files": {k: (v.encode() if isinstance(v, str) else v).hex() for k, v in extra.items()},
        "code": m.code,
    }


def save_check(path):
    try:
        torch.load(path, weights_only=True)
        return {"ok": True}
    except Exception as e:  # the report is the result
        return {"ok": False, "error": type(e).__name__, "message": str(e)}


def run_one(argv):
    ap = argparse.ArgumentParser(prog="oracle.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("describe")
    p.add_argument("file")
    p.add_argument("--weights-only", type=int, choices=(0, 1), default=1)
    p.add_argument("--map-location", default=None)
    p = sub.add_parser("save-check")
    p.add_argument("file")
    p = sub.add_parser("inspect-json")
    p.add_argument("file")
    p = sub.add_parser("jit")
    p.add_argument("file")
    p.add_argument("--attrs", default="")
    args = ap.parse_args(argv)
    if args.cmd == "jit":
        return jit_describe(args.file, [a for a in args.attrs.split(",") if a])
    if args.cmd == "describe":
        return describe(args.file, bool(args.weights_only), args.map_location)
    if args.cmd == "save-check":
        return save_check(args.file)
    return inspect_json(args.file)


def main(argv):
    fixture_classes.install_in_main()
    if argv[:1] == ["batch"]:
        out = []
        for one in json.load(sys.stdin):
            try:
                out.append({"ok": True, "result": run_one([str(a) for a in one])})
            except (Exception, SystemExit) as e:
                out.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    else:
        try:
            out = run_one(argv)
        except Exception as e:
            print(f"oracle.py {' '.join(argv)}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    sys.stdout.write(json.dumps(out, ensure_ascii=False))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
