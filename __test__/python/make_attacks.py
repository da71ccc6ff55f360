#!/usr/bin/env python3
"""Writes hostile and broken checkpoint files, one per attack (STYLE.md habit 5).

    python make_attacks.py [OUTDIR]        (default: __test__/fixtures/generated/attacks/)

Outputs every file, `README.md` (one line per attack: what it does, what a safe reader must
do) and `attacks.json`:

    {"<file>": {"codes": ["E_..."], "readme": "...", "torch_weights_only": "rejects"|"loads",
                "torch_error": "<first line of torch's error>"|null}}

`codes` is what torchsave must raise for `torch.load(file)` with DEFAULT options
(weights-only); where two codes are defensible both are listed. The `torch_*` fields are not
expectations for us: they record what real torch 2.11 `torch.load(f, weights_only=True)` does
with the same bytes (computed here, not hand-written), e.g. torch ignores CRCs and inflates
any deflate record. Pickles are assembled opcode by opcode (below) so each attack is exact;
containers are built with Python's zipfile/tarfile or by truncating/patching torch's own output.
No attack file runs anything when loaded by a correct reader; the payloads are inert strings
(`echo torchsave-attack`) in case a broken reader does execute them.
"""
import collections
import io
import json
import os
import struct
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import make_fixtures  # noqa: E402  (write_tar, the real tar layout)

DEFAULT_OUT = os.path.join(HERE, "..", "fixtures", "generated", "attacks")
PAYLOAD = "echo torchsave-attack"

# --- a tiny pickle assembler ---------------------------------------------------------------


def proto():
    return b"\x80\x02"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def ustr(s):
    b = s.encode("utf-8")
    return b"X" + struct.pack("<I", len(b)) + b


def small_int(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


MARK, TUPLE, TUPLE1, EMPTY_TUPLE, REDUCE, NEWOBJ, STOP = b"(", b"t", b"\x85", b")", b"R", b"\x81", b"."
SETITEMS, BINPERSID, NEWFALSE, EMPTY_DICT, EMPTY_LIST, APPEND = b"u", b"Q", b"\x89", b"}", b"]", b"a"


def ordered_dict_open():
    return glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE


def tensor_pickle(offset=0, size=(4,), stride=(1,), numel=4, stype="FloatStorage", key="0"):
    """An OrderedDict {'w': _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())}."""
    pid = MARK + ustr("storage") + glob("torch", stype) + ustr(key) + ustr("cpu") + small_int(numel) + TUPLE + BINPERSID
    tup = lambda xs: MARK + b"".join(small_int(x) for x in xs) + TUPLE  # noqa: E731
    args = MARK + pid + small_int(offset) + tup(size) + tup(stride) + NEWFALSE + ordered_dict_open() + TUPLE
    return (proto() + ordered_dict_open() + MARK + ustr("w") + glob("torch._utils", "_rebuild_tensor_v2") + args
            + REDUCE + SETITEMS + STOP)


def zip_file(path, records, folder="archive", compress=None):
    """A torch-style zip from (name, bytes) pairs, written by Python's zipfile."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in records:
            if compress and name in compress:
                z.writestr(zipfile.ZipInfo(f"{folder}/{name}"), data, compress_type=zipfile.ZIP_DEFLATED)
            else:
                z.writestr(f"{folder}/{name}", data)


def torch_zip(path, pkl, storages=(("0", b"\0" * 16),), extra=()):
    recs = [("data.pkl", pkl), ("byteorder", b"little")]
    recs += [(f"data/{k}", v) for k, v in storages]
    recs += [("version", b"3\n")] + list(extra)
    zip_file(path, recs)


# --- the attacks ---------------------------------------------------------------------------

ATTACKS = collections.OrderedDict()


def attack(fname, codes, readme):
    def deco(fn):
        ATTACKS[fname] = (codes, readme, fn)
        return fn
    return deco


def reduce_call(module, name):
    return proto() + glob(module, name) + MARK + ustr(PAYLOAD) + TUPLE + REDUCE + STOP


@attack("pickle_os_system.pt", ["E_UNSAFE_GLOBAL"],
        "torch zip whose data.pkl is GLOBAL os.system + REDUCE('echo ...'): must never be called, blocked module")
def _(p):
    torch_zip(p, reduce_call("os", "system"), storages=())


@attack("pickle_builtins_eval.pt", ["E_UNSAFE_GLOBAL"], "data.pkl calls builtins.eval('...') through REDUCE")
def _(p):
    torch_zip(p, reduce_call("builtins", "eval"), storages=())


@attack("pickle_py2_builtin_eval.pt", ["E_UNSAFE_GLOBAL"],
        "data.pkl calls __builtin__.eval (Python 2 name, mapped to builtins): the name mapping must not bypass the policy")
def _(p):
    torch_zip(p, reduce_call("__builtin__", "eval"), storages=())


@attack("pickle_subprocess_popen_newobj.pt", ["E_UNSAFE_GLOBAL"],
        "data.pkl builds subprocess.Popen via NEWOBJ (cls.__new__), not REDUCE")
def _(p):
    pkl = proto() + glob("subprocess", "Popen") + MARK + ustr(PAYLOAD) + TUPLE + NEWOBJ + STOP
    torch_zip(p, pkl, storages=())


@attack("pickle_posix_system.pt", ["E_UNSAFE_GLOBAL"], "data.pkl calls posix.system (os.system's real module)")
def _(p):
    torch_zip(p, reduce_call("posix", "system"), storages=())


@attack("pickle_unsafe_inside_state_dict.pt", ["E_UNSAFE_GLOBAL"],
        "a real-looking state dict with one value that is os.system(...): the whole load must fail")
def _(p):
    pkl = tensor_pickle()[:-2]  # drop SETITEMS STOP: add one more pair in the same MARK
    pkl += ustr("evil") + glob("os", "system") + MARK + ustr(PAYLOAD) + TUPLE + REDUCE + SETITEMS + STOP
    torch_zip(p, pkl)


@attack("pickle_deep_nesting.pt", ["E_LIMIT_EXCEEDED"],
        "200,000 nested lists (EMPTY_LIST x N, APPEND x N-1): depth limit, no native stack overflow")
def _(p):
    n = 200_000
    torch_zip(p, proto() + EMPTY_LIST * n + APPEND * (n - 1) + STOP, storages=())


@attack("pickle_deep_tuples.pt", ["E_LIMIT_EXCEEDED"], "100,000 nested MARKs: mark-stack/depth limit")
def _(p):
    n = 100_000
    torch_zip(p, proto() + MARK * n + TUPLE * n + STOP, storages=())


@attack("pickle_memo_out_of_range.pt", ["E_BAD_PICKLE"], "BINGET 200 with an empty memo")
def _(p):
    torch_zip(p, proto() + b"h\xc8" + STOP, storages=())


@attack("pickle_long_binget_huge.pt", ["E_BAD_PICKLE"],
        "LONG_BINGET 0xFFFFFFFF with nothing memoised (note: LONG_BINPUT then LONG_BINGET at that index is VALID "
        "and torch loads it: a memo must be a sparse map, not a vector sized by the index)")
def _(p):
    torch_zip(p, proto() + EMPTY_DICT + b"j\xff\xff\xff\xff" + STOP, storages=())


@attack("pickle_huge_length_prefix.pt", ["E_TRUNCATED", "E_LIMIT_EXCEEDED"],
        "BINUNICODE with length 0xFFFFFFF0 and 5 bytes of payload: validate before allocating")
def _(p):
    torch_zip(p, proto() + b"X" + struct.pack("<I", 0xFFFFFFF0) + b"hello" + STOP, storages=())


@attack("pickle_huge_long4.pt", ["E_UNSAFE_GLOBAL", "E_TRUNCATED", "E_LIMIT_EXCEEDED"],
        "LONG4 claiming 2 GiB of integer bytes (weights-only rejects LONG4 first, like torch: a policy refusal)")
def _(p):
    torch_zip(p, proto() + b"\x8b" + struct.pack("<i", 0x7FFFFFF0) + b"\x01" + STOP, storages=())


@attack("pickle_unknown_opcode.pt", ["E_UNKNOWN_OPCODE"], "opcode byte 0xFF inside data.pkl")
def _(p):
    torch_zip(p, proto() + b"\xff" + STOP, storages=())


@attack("pickle_stack_underflow.pt", ["E_BAD_PICKLE"], "REDUCE with an empty stack")
def _(p):
    torch_zip(p, proto() + REDUCE + STOP, storages=())


@attack("pickle_no_stop.pt", ["E_TRUNCATED", "E_BAD_PICKLE"], "data.pkl ends without STOP")
def _(p):
    torch_zip(p, proto() + EMPTY_DICT, storages=())


@attack("pickle_bad_persistent_id.pt", ["E_BAD_PICKLE", "E_UNSAFE_GLOBAL", "E_BAD_RECONSTRUCT"],
        "BINPERSID whose id is ('module', ...) - not a storage")
def _(p):
    torch_zip(p, proto() + MARK + ustr("module") + ustr("x") + TUPLE + BINPERSID + STOP, storages=())


@attack("storage_view_past_end.pt", ["E_STORAGE_BOUNDS"],
        "tensor offset 3, size 4 over a 4-element storage (patched storage_offset in data.pkl)")
def _(p):
    torch_zip(p, tensor_pickle(offset=3))


@attack("storage_negative_stride.pt", ["E_STORAGE_BOUNDS"], "tensor with stride -1")
def _(p):
    pkl = tensor_pickle(stride=(0,)).replace(b"(K\x00t", b"(J" + struct.pack("<i", -1) + b"t")
    torch_zip(p, pkl)


@attack("storage_absurd_numel.pt", ["E_STORAGE_SIZE", "E_LIMIT_EXCEEDED"],
        "persistent id numel 2**62 (bytes overflow u64 when x4) over a 16-byte record")
def _(p):
    torch_zip(p, tensor_pickle(numel=2**62))


@attack("storage_absurd_shape.pt", ["E_STORAGE_BOUNDS", "E_LIMIT_EXCEEDED"],
        "tensor size (2**62, 4) over a 16-byte storage: element-count overflow")
def _(p):
    torch_zip(p, tensor_pickle(size=(2**62, 4), stride=(4, 1)))


@attack("storage_size_mismatch.pt", ["E_STORAGE_SIZE"], "persistent id says 4 floats, data/0 has 12 bytes")
def _(p):
    torch_zip(p, tensor_pickle(), storages=(("0", b"\0" * 12),))


@attack("storage_missing_record.pt", ["E_MISSING_RECORD"], "data.pkl references data/0; the zip has no such record")
def _(p):
    torch_zip(p, tensor_pickle(), storages=())


@attack("zip_missing_data_pkl.pt", ["E_MISSING_RECORD"], "a torch-looking zip without data.pkl")
def _(p):
    zip_file(p, [("byteorder", b"little"), ("version", b"3\n")])


@attack("zip_bad_crc.pt", ["E_BAD_CRC"],
        "one data byte flipped after the CRC was computed (torch does not check CRCs and loads it silently)")
def _(p):
    torch.save(collections.OrderedDict(w=torch.arange(8.0)), p)
    b = bytearray(open(p, "rb").read())
    with zipfile.ZipFile(p) as z:
        info = [i for i in z.infolist() if i.filename.endswith("data/0")][0]
    h = info.header_offset
    start = h + 30 + len(info.filename.encode()) + struct.unpack("<H", b[h + 28:h + 30])[0]
    b[start + 5] ^= 0x40
    open(p, "wb").write(bytes(b))


@attack("zip_duplicate_names.pt", ["E_BAD_ZIP"], "two entries named archive/data.pkl with different content")
def _(p):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zip_file(p, [("data.pkl", proto() + EMPTY_DICT + STOP), ("data.pkl", reduce_call("os", "system")),
                     ("version", b"3\n")])


@attack("zip_corrupt_central_directory.pt", ["E_BAD_ZIP"],
        "central directory entry signatures overwritten (PK\\1\\2 -> XX\\1\\2) in a real torch file")
def _(p):
    torch.save(collections.OrderedDict(w=torch.ones(3)), p)
    b = open(p, "rb").read().replace(b"PK\x01\x02", b"XX\x01\x02")
    open(p, "wb").write(b)


@attack("zip_cd_offset_past_end.pt", ["E_BAD_ZIP", "E_TRUNCATED"],
        "end record's central directory offset points past the end of the file")
def _(p):
    torch.save(collections.OrderedDict(w=torch.ones(3)), p)
    b = bytearray(open(p, "rb").read())
    eocd = b.rfind(b"PK\x05\x06")
    b[eocd + 16:eocd + 20] = struct.pack("<I", 0x7FFFFFF0)
    z64 = b.rfind(b"PK\x06\x06")
    if z64 >= 0:
        b[z64 + 48:z64 + 56] = struct.pack("<Q", 0x7FFFFFFFFFF0)
    open(p, "wb").write(bytes(b))


@attack("zip_bomb_deflate.pt", ["E_LIMIT_EXCEEDED", "E_BAD_ZIP"],
        "data/0 is a deflate record of 256 MiB of zeros (~250 KiB on disk, ratio ~1000:1): cap the inflate "
        "ratio/size or refuse compressed records (torch inflates it)")
def _(p):
    n = 64 * 1024 * 1024
    zeros = bytes(4 * 1024 * 1024)
    # Streamed through zipfile so that neither side holds 256 MiB.
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("archive/data.pkl", tensor_pickle(size=(n,), numel=n))
        z.writestr("archive/byteorder", b"little")
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as w:
            for _ in range(64):
                w.write(zeros)
        z.writestr("archive/version", b"3\n")


def legacy_bytes():
    buf = io.BytesIO()
    torch.save(collections.OrderedDict(w=torch.arange(4.0)), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


@attack("legacy_wrong_magic.pt", ["E_BAD_MAGIC"], "legacy stream whose magic number has one byte changed")
def _(p):
    b = bytearray(legacy_bytes())
    assert b[2:4] == b"\x8a\x0a"
    b[4] ^= 0x01
    open(p, "wb").write(bytes(b))


@attack("legacy_wrong_protocol.pt", ["E_BAD_MAGIC", "E_UNSUPPORTED_VERSION"], "legacy stream with protocol version 1002")
def _(p):
    b = legacy_bytes()
    b = b.replace(b"\x80\x02M\xe9\x03.", b"\x80\x02M\xea\x03.", 1)
    open(p, "wb").write(b)


@attack("legacy_truncated_storage.pt", ["E_TRUNCATED", "E_STORAGE_SIZE"], "legacy stream cut in the middle of the raw storage bytes")
def _(p):
    b = legacy_bytes()
    open(p, "wb").write(b[:-6])


@attack("tar_bad_member.tar", ["E_TRUNCATED", "E_BAD_TAR", "E_STORAGE_SIZE"],
        "tar-format checkpoint whose 'storages' member declares 4 float32 elements but holds 2 (bad member)")
def _(p):
    tmp = p + ".src"
    make_fixtures.write_tar(tmp, collections.OrderedDict(w=torch.arange(4.0)))
    with tarfile.open(tmp) as t_in, tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as t_out:
        for m in t_in.getmembers():
            data = t_in.extractfile(m).read()
            if m.name == "storages":
                # Keep the header pickles, cut the raw data short, keep the trailing views list.
                views = b"\x80\x02]q\x00."
                assert data.endswith(views)
                data = data[: -len(views) - 8] + views
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            t_out.addfile(info, io.BytesIO(data))
    os.remove(tmp)


@attack("tar_corrupt_header.tar", ["E_BAD_TAR", "E_UNKNOWN_FORMAT"],
        "tar-format checkpoint whose first member header checksum is wrong")
def _(p):
    make_fixtures.write_tar(p, collections.OrderedDict(w=torch.arange(4.0)))
    b = bytearray(open(p, "rb").read())
    b[148:156] = b"0000000\0"
    open(p, "wb").write(bytes(b))


def truncations():
    buf = io.BytesIO()
    torch.save(collections.OrderedDict(w=torch.arange(64.0), b=torch.ones(3)), buf)
    full = buf.getvalue()
    for label, n in (("10b", 10), ("100b", 100), ("mid_data", len(full) // 2), ("before_eocd", len(full) - 30),
                     ("minus1", len(full) - 1)):
        yield label, full[:n]


def register_truncations():
    for label, data in truncations():
        def make(p, data=data):
            open(p, "wb").write(data)
        ATTACKS[f"zip_truncated_{label}.pt"] = (["E_TRUNCATED", "E_BAD_ZIP"],
                                                f"a real torch zip cut to {len(data)} bytes ({label})", make)


def torch_verdict(path):
    try:
        torch.load(path, weights_only=True)
        return "loads", None
    except Exception as e:  # noqa: BLE001 - the verdict is the data
        return "rejects", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}" if str(e).strip() else type(e).__name__


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    register_truncations()
    table = collections.OrderedDict()
    lines = ["# Attack files", "", "Generated by `__test__/python/make_attacks.py`; expected codes in `attacks.json`.", ""]
    for fname, (codes, readme, make) in ATTACKS.items():
        path = os.path.join(out, fname)
        make(path)
        verdict, err = torch_verdict(path)
        table[fname] = {"codes": codes, "readme": readme, "torch_weights_only": verdict, "torch_error": err}
        lines.append(f"- `{fname}` ({' or '.join(codes)}): {readme}. torch 2.11 weights_only: {verdict}.")
    with open(os.path.join(out, "attacks.json"), "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"make_attacks: {len(table)} attack files in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
