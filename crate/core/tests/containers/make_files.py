"""Writes the container fixtures next to this script with REAL PyTorch, plus expected.tsv.

Run with the pinned venv (torch 2.11.0):
    ~/.cache/torchsave/venv-torch-2.11.0/bin/python crate/core/tests/containers/make_files.py

Files (all hold small state dicts; the tests compare against expected.tsv, never against
hand-written values):
  zip_default.pt      torch.save(sd, path)                 -> folder 'zip_default'
  zip_buffer.pt       torch.save(sd, BytesIO)              -> folder 'archive'
  zip_deflated.pt     zip_buffer.pt re-zipped by Python zipfile with ZIP_DEFLATED
  zip_nocrc.pt        write_big_endian(p("zip_buffer.pt"), p("zip_bigendian.pt"))
    torch.serialization.set_crc32_options(False)
  zip_renamed.pt      zip_buffer.pt with its folder renamed to 'renamed_folder' (torch loads it)
  zip_bigendian.pt    zip_buffer.pt with byteorder 'big' and every storage byte-swapped (torch
                      swaps it back on load; checked below)
  zip_empty.pt        a state dict holding an empty tensor (0-byte record, flags 0x0800)
  legacy.pt           _use_new_zipfile_serialization=False
  tar.pt              the pre-0.1.10 tar layout, built here from torch's own reader's rules
                      (torch.load(weights_only=False) is checked to read it back)

expected.tsv, per file:
  format, folder (zip), records {name: {size, sha256}} as Python's zipfile reads them (zip),
  legacy: tail_offset (where the raw storages start), keys, storages {key: {dtype, numel, sha256}},
  tensors: [{path, dtype, shape, stride, storage_offset, requires_grad, sha256}] in the order
  inspect must list them (sha256 over contiguous C-order little-endian bytes).
"""

import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from collections import OrderedDict

import torch

assert torch.__version__.startswith("2.11"), torch.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def tensor_bytes(t):
    t = t.detach().contiguous()
    if t.numel() == 0:
        return b""
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def state_dict():
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    tied = torch.randn(3)
    sd = OrderedDict()
    sd["w"] = base
    sd["w_t"] = base.t()  # a non-contiguous view of the same storage
    sd["b"] = torch.tensor([1, -2], dtype=torch.int64)
    sd["half"] = torch.randn(2, 2).half()
    sd["bf16"] = torch.randn(3).bfloat16()
    sd["mask"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5, dtype=torch.float64)
    sd["tied_a"] = tied
    sd["tied_b"] = tied
    sd["u8"] = torch.arange(5, dtype=torch.uint8)[1:4]  # storage offset 1
    return sd


def tensors_expected(sd):
    out = []
    for k, t in sd.items():
        out.append(
            {
                "path": [k],
                "dtype": str(t.dtype).replace("torch.", ""),
                "shape": list(t.shape),
                "stride": list(t.stride()),
                "storage_offset": t.storage_offset(),
                "requires_grad": t.requires_grad,
                "sha256": sha(tensor_bytes(t)),
            }
        )
    return out


def zip_expected(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        recs = {}
        for n in names:
            with z.open(n) as ef:
                ef._expected_crc = None  # CRC 0 = "not recorded" (set_crc32_options(False))
                data = ef.read()
            recs[n] = {"size": len(data), "sha256": sha(data), "crc32": z.getinfo(n).CRC}
    return {"format": "zip", "folder": names[0].split("/")[0], "records": recs}


def rezip(src, dst, compression, rename=None):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", compression=compression) as zo:
        for n in zi.namelist():
            new = n if rename is None else rename + n[n.index("/"):]
            zo.writestr(new, zi.read(n))


def storage_types(pkl):
    """key -> storage class name, from the persistent ids of a data.pkl."""
    out = {}

    class U(pickle.Unpickler):
        def persistent_load(self, pid):
            out[pid[2]] = pid[1]
            return None

        def find_class(self, mod, name):
            if "Storage" in name:
                return name
            if (mod, name) == ("collections", "OrderedDict"):
                return OrderedDict
            return lambda *a, **k: None

    U(io.BytesIO(pkl)).load()
    return out


def write_big_endian(src, dst):
    """src re-zipped with byteorder 'big' and every storage byte-swapped per element."""
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        folder = zi.namelist()[0].split("/")[0]
        types = storage_types(zi.read(folder + "/data.pkl"))
        for n in zi.namelist():
            data = zi.read(n)
            rel = n[len(folder) + 1:]
            if rel == "byteorder":
                data = b"big"
            elif rel.startswith("data/"):
                es = torch.empty((), dtype=getattr(torch, types[rel[5:]]).dtype).element_size()
                data = b"".join(data[i:i + es][::-1] for i in range(0, len(data), es))
            zo.writestr(n, data)


def legacy_expected(path):
    pids = []

    class U(pickle.Unpickler):
        def persistent_load(self, pid):
            pids.append(pid)
            return None

        def find_class(self, mod, name):
            if "Storage" in name:
                return name
            if (mod, name) == ("collections", "OrderedDict"):
                return OrderedDict
            return lambda *a, **k: None  # only the persistent ids matter here

    with open(path, "rb") as f:
        pickle.load(f)
        pickle.load(f)
        pickle.load(f)
        U(f).load()
        keys = pickle.load(f)
        tail = f.tell()
        by_key = {}
        for pid in pids:
            _, stype, key, _, numel, _ = pid
            by_key.setdefault(key, (stype, numel))
        storages = {}
        for k in keys:
            (count,) = struct.unpack("<q", f.read(8))
            stype, numel = by_key[k]
            dtype = getattr(torch, stype).dtype
            es = torch.empty((), dtype=dtype).element_size()
            assert count == numel
            storages[k] = {"dtype": str(dtype).replace("torch.", ""), "numel": numel, "sha256": sha(f.read(count * es))}
    return {"format": "legacy", "tail_offset": tail, "keys": keys, "storages": storages}


def write_tar(path, sd):
    """The 0.1.x tar layout (FORMAT.md 4.3), checked below by torch.load itself."""
    storages, tensors = OrderedDict(), OrderedDict()
    for t in sd.values():
        s = t.untyped_storage()
        skey = str(s.data_ptr())
        storages.setdefault(skey, (t.dtype, t.detach()))
        tensors[str(id(t))] = (t, skey)

    def storage_bytes(key):
        dtype, t = storages[key]
        st = t.untyped_storage()
        return bytes(st), st.nbytes() // torch.empty((), dtype=dtype).element_size()

    sbuf = io.BytesIO()
    pickle.dump(len(storages), sbuf, protocol=2)
    for key, (dtype, t) in storages.items():
        stype = getattr(torch, {torch.float32: "FloatStorage", torch.int64: "LongStorage", torch.float16: "HalfStorage",
                                torch.bfloat16: "BFloat16Storage", torch.bool: "BoolStorage",
                                torch.float64: "DoubleStorage", torch.uint8: "ByteStorage"}[dtype])
        pickle.dump((int(key), "cpu", stype), sbuf, protocol=2)
        data, n = storage_bytes(key)
        sbuf.write(struct.pack("<q", n))
        sbuf.write(data)
    pickle.dump([], sbuf, protocol=2)

    tbuf = io.BytesIO()
    pickle.dump(len(tensors), tbuf, protocol=2)
    for key, (t, skey) in tensors.items():
        pickle.dump((int(key), int(skey), "torch.FloatTensor"), tbuf, protocol=2)
        tbuf.write(struct.pack("<i", t.dim()) + b"\0\0\0\0")
        tbuf.write(struct.pack(f"<{t.dim()}q", *t.shape))
        tbuf.write(struct.pack(f"<{t.dim()}q", *t.stride()))
        tbuf.write(struct.pack("<q", t.storage_offset()))

    pbuf = io.BytesIO()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, torch.Tensor):
                return str(id(obj))
            return None

    P(pbuf, protocol=2).dump(OrderedDict(sd))
    sys_info = pickle.dumps({"protocol_version": 1000, "little_endian": True,
                             "type_sizes": {"short": 2, "int": 4, "long": 8}}, protocol=2)
    with tarfile.open(path, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [("sys_info", sys_info), ("pickle", pbuf.getvalue()),
                           ("tensors", tbuf.getvalue()), ("storages", sbuf.getvalue())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def main():
    sd = state_dict()
    exp = {}
    p = lambda n: os.path.join(HERE, n)

    torch.save(sd, p("zip_default.pt"))
    buf = io.BytesIO()
    torch.save(sd, buf)
    with open(p("zip_buffer.pt"), "wb") as f:
        f.write(buf.getvalue())
    rezip(p("zip_buffer.pt"), p("zip_deflated.pt"), zipfile.ZIP_DEFLATED)
    rezip(p("zip_buffer.pt"), p("zip_renamed.pt"), zipfile.ZIP_STORED, rename="renamed_folder")
    write_big_endian(p("zip_buffer.pt"), p("zip_bigendian.pt"))
    torch.serialization.set_crc32_options(False)
    torch.save(sd, p("zip_nocrc.pt"))
    torch.serialization.set_crc32_options(True)
    empty_sd = OrderedDict(empty=torch.zeros(0, 3), one=torch.ones(2))
    torch.save(empty_sd, p("zip_empty.pt"))
    torch.save(sd, p("legacy.pt"), _use_new_zipfile_serialization=False)
    write_tar(p("tar.pt"), sd)

    for name in ["zip_default", "zip_buffer", "zip_deflated", "zip_renamed", "zip_nocrc", "zip_empty", "zip_bigendian"]:
        path = p(name + ".pt")
        e = zip_expected(path)
        e["tensors"] = tensors_expected(empty_sd if name == "zip_empty" else sd)
        exp[name] = e
        got = torch.load(path)
        src = empty_sd if name == "zip_empty" else sd
        assert list(got) == list(src) and all(torch.equal(got[k], src[k]) for k in src), name
    exp["legacy"] = legacy_expected(p("legacy.pt"))
    exp["legacy"]["tensors"] = tensors_expected(sd)
    got = torch.load(p("legacy.pt"))
    assert all(torch.equal(got[k], sd[k]) for k in sd)
    got = torch.load(p("tar.pt"), weights_only=False)
    assert list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd), "tar"
    assert got["tied_a"] is got["tied_b"]
    exp["tar"] = {"format": "tar", "tensors": tensors_expected(sd)}
    # The zero-length record must carry flags 0x0800 and no data descriptor (FORMAT.md 2.4).
    with zipfile.ZipFile(p("zip_empty.pt")) as z:
        info = [i for i in z.infolist() if i.file_size == 0 and "/data/" in i.filename][0]
        assert info.flag_bits == 0x0800, hex(info.flag_bits)
    with zipfile.ZipFile(p("zip_nocrc.pt")) as z:
        assert all(i.CRC == 0 for i in z.infolist() if "/data/" in i.filename)
    # expected.tsv: one fact per line, tab-separated, easy to read from Rust without a JSON
    # crate. `tensors` lines hold the exact compact JSON array `inspect --json --sha256` must print.
    lines = [f"torch\t{torch.__version__}"]
    for name, e in exp.items():
        lines.append(f"format\t{name}\t{e['format']}")
        if "folder" in e:
            lines.append(f"folder\t{name}\t{e['folder']}")
        for rec, r in e.get("records", {}).items():
            lines.append(f"record\t{name}\t{rec}\t{r['size']}\t{r['sha256']}\t{r['crc32']}")
        if "tail_offset" in e:
            lines.append(f"legacy_tail\t{name}\t{e['tail_offset']}")
            for k in e["keys"]:
                st = e["storages"][k]
                lines.append(f"legacy_key\t{name}\t{k}\t{st['dtype']}\t{st['numel']}\t{st['sha256']}")
        lines.append(f"tensors\t{name}\t{json.dumps(e['tensors'], separators=(',', ':'))}")
    with open(p("expected.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
