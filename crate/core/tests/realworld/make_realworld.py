"""Fetches the real-world corpus and records what real torch reads from every file.

Usage: python make_realworld.py [CACHE_DIR]   (default: $TORCHSAVE_REALWORLD or
~/.cache/torchsave/realworld-<hash of requirements.txt + corpus.json + this script>)

* downloads each wheel of requirements.txt with `pip download --no-deps --require-hashes`
  (one call per line: two silero-vad versions are pinned) into ~/.cache/torchsave/pypi-wheels
  (shared by every corpus key: a wheel is found there by the hash its line pins);
* extracts the files corpus.json lists into CACHE_DIR/files/<package>/<path>;
* writes CACHE_DIR/manifest.json in the peer corpus's schema (../shared/peer-corpus), from
  torch.load(weights_only=False, map_location='cpu') with inert placeholder classes for modules
  that are not installed here (nothing of theirs runs), or torch.jit.load for TorchScript.

Nothing is written inside the clone. A complete cache is reused: the manifest is written
last, so its presence means the rest is there. Prints the cache directory on its last line.
"""

import hashlib
import io
import json
import os
import pickle
import pickletools
import subprocess
import sys
import tempfile
import types
import zipfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def corpus_key():
    h = hashlib.sha256()
    for name in ("requirements.txt", "corpus.json", "make_realworld.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    h.update(torch.__version__.encode())
    return h.hexdigest()[:12]


def requirement_lines():
    with open(os.path.join(HERE, "requirements.txt")) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def download(wheels):
    os.makedirs(wheels, exist_ok=True)
    have = set(os.listdir(wheels))
    for line in requirement_lines():
        digest = line.split("--hash=sha256:")[1].strip()
        if any(sha256_file(os.path.join(wheels, w)) == digest for w in have if w.endswith(".whl")):
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
            req.write(line + "\n")
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
                 "--only-binary=:all:", "--disable-pip-version-check", "-q", "-d", wheels,
                 "-r", req.name],
                check=True,
            )
        finally:
            os.unlink(req.name)
        have = set(os.listdir(wheels))


_sha_cache = {}


def sha256_file(path):
    if path not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _sha_cache[path] = h.hexdigest()
    return _sha_cache[path]


def wheel_for(wheels, package):
    """The downloaded wheel of `package` ("name==version"), by the hash its line pins."""
    for line in requirement_lines():
        if line.split()[0] == package:
            digest = line.split("--hash=sha256:")[1].strip()
            for w in sorted(os.listdir(wheels)):
                if w.endswith(".whl") and sha256_file(os.path.join(wheels, w)) == digest:
                    return os.path.join(wheels, w)
    raise SystemExit(f"make_realworld: no wheel downloaded for {package}")


# --- what torch reads -------------------------------------------------------------------

class Placeholder(dict):
    """Stands for a class whose module is not installed: keeps what the pickle gave it."""

    def __init__(self, *args, **kwargs):
        dict.__init__(self)
        object.__setattr__(self, "_ph_args", args)

    def __new__(cls, *args, **kwargs):
        obj = dict.__new__(cls)
        object.__setattr__(obj, "_ph_args", args)
        return obj

    def __setstate__(self, state):
        object.__setattr__(self, "_ph_state", state)

    def __reduce_ex__(self, protocol):
        raise TypeError("placeholder")


MISSING = set()


class PlaceholderUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            MISSING.add(f"{module}.{name}")
            return type(name, (Placeholder,), {"__module__": module})


placeholder_pickle = types.ModuleType("placeholder_pickle")
placeholder_pickle.Unpickler = PlaceholderUnpickler
placeholder_pickle.load = pickle.load
placeholder_pickle.__name__ = "pickle"


def digest(t):
    t = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()


def tensor_entry(path, t):
    return {
        "path": path,
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "storage_offset": t.storage_offset(),
        "requires_grad": bool(t.requires_grad),
        "sha256": digest(t),
    }


def walk(obj, path, tensors, arrays, seen):
    """Tensors and numpy arrays in the order torchsave's inspect walks a loaded value."""
    if isinstance(obj, torch.Tensor):
        tensors.append(tensor_entry(path, obj))
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype != object:
            arrays.append({"path": path, "type": "numpy.ndarray", "dtype": str(obj.dtype),
                           "shape": list(obj.shape),
                           "sha256": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()})
        else:
            for i, x in enumerate(obj.reshape(-1)):
                walk(x, path + [i], tensors, arrays, seen)
        return
    if isinstance(obj, (str, bytes, int, float, bool, type(None), complex, torch.dtype,
                        torch.device, torch.Size, type)):
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.jit.ScriptModule):
        for name, v in torch._C._jit_debug_module_iterators(obj._c)["named_attributes"]:
            walk(getattr(obj, name, v), path + [name], tensors, arrays, seen)
        return
    if isinstance(obj, Placeholder):
        for i, a in enumerate(obj._ph_args):
            walk(a, path + [i], tensors, arrays, seen)
        state = getattr(obj, "_ph_state", None)
        if isinstance(state, dict):
            for k, v in state.items():
                walk(v, path + [{"attr": k}], tensors, arrays, seen)
        elif state is not None:
            walk(state, path, tensors, arrays, seen)
        for k, v in dict.items(obj):
            walk(v, path + [k], tensors, arrays, seen)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            walk(v, path + [k], tensors, arrays, seen)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        for i, v in enumerate(obj):
            walk(v, path + [i], tensors, arrays, seen)
        return
    if hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            walk(v, path + [{"attr": k}], tensors, arrays, seen)


def main_pickle(path):
    """The pickle whose globals the manifest lists: data.pkl (zip) or the legacy main one."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl")
            return "zip", z.read(name)
    with open(path, "rb") as f:
        data = f.read()
    stream = io.BytesIO(data)
    pickles = []
    for _ in range(3):  # magic, protocol version, sys_info
        pickle.load(stream, encoding="latin1")
    start = stream.tell()
    for _op, _arg, pos in pickletools.genops(stream):
        end = stream.tell()
    pickles.append(data[start:end])
    return "legacy", pickles[0]


def globals_and_py2(data):
    names, py2 = [], set()
    strings = []
    for op, arg, _pos in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        if op.name == "GLOBAL":
            names.append(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
            names.append(f"{strings[-2]}.{strings[-1]}")
        if op.name in ("SHORT_BINSTRING", "BINSTRING", "STRING", "INT", "LONG"):
            py2.add(op.name)
    return sorted(set(names), key=names.index), sorted(py2)


def describe(path, entry):
    out = {"file": f"{entry['package']}/{entry['path']}", "package": entry["package"],
           "path_in_archive": entry["path"], "exercises": entry["exercises"],
           "size": os.path.getsize(path), "sha256_file": sha256_file(path)}
    fmt, data = main_pickle(path)
    names, py2 = globals_and_py2(data)
    is_ts = fmt == "zip" and any(n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist())
    out["pickle_globals"] = names
    out["python2_opcodes"] = py2
    out["torchscript"] = is_ts
    out["format"] = fmt
    tensors, arrays = [], []
    if is_ts:
        m = torch.jit.load(path, map_location="cpu")
        out["load"] = "torch.jit.load"
        out["loads_weights_only_2_x"] = False
        walk(m, [], tensors, arrays, set())
    else:
        try:
            torch.load(path, map_location="cpu", weights_only=True)
            out["loads_weights_only_2_x"] = True
        except Exception as e:  # noqa: BLE001 - the verdict is the point
            out["loads_weights_only_2_x"] = False
            out["weights_only_error"] = str(e).splitlines()[0][:300]
        locations = []

        def where(storage, location):
            locations.append(location)
            return storage

        MISSING.clear()
        obj = torch.load(path, map_location=where, weights_only=False,
                         pickle_module=placeholder_pickle)
        out["load"] = "torch.load(weights_only=False)"
        out["storage_locations"] = sorted(set(locations))
        out["placeholder_globals"] = sorted(MISSING)
        walk(obj, [], tensors, arrays, set())
    out["tensors"] = tensors
    out["non_tensor"] = arrays
    out["reader_expectation"] = "read"
    return out


def main():
    cache = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TORCHSAVE_REALWORLD")
             or os.path.join(os.path.expanduser("~/.cache/torchsave"), f"realworld-{corpus_key()}"))
    manifest = os.path.join(cache, "manifest.json")
    if os.path.exists(manifest):
        print(cache)
        return
    wheels = os.path.join(os.path.expanduser("~/.cache/torchsave"), "pypi-wheels")
    download(wheels)
    with open(os.path.join(HERE, "corpus.json")) as f:
        corpus = json.load(f)
    files = []
    for entry in corpus["files"]:
        dest = os.path.join(cache, "files", entry["package"], entry["path"])
        if not os.path.exists(dest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with zipfile.ZipFile(wheel_for(wheels, entry["package"])) as z:
                with z.open(entry["path"]) as src, open(dest + ".part", "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
            os.replace(dest + ".part", dest)
        files.append(describe(dest, entry))
        print(f"make_realworld: {files[-1]['file']}: {files[-1]['format']}, "
              f"{len(files[-1]['tensors'])} tensors", file=sys.stderr)
    doc = {"torch_version": torch.__version__, "numpy_version": np.__version__,
           "schema": "as ../shared/peer-corpus/manifest.json; plus package, path_in_archive, exercises",
           "files": files}
    with open(manifest + ".part", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(manifest + ".part", manifest)
    print(cache)


if __name__ == "__main__":
    main()
