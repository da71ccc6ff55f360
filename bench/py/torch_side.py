"""PyTorch's half of the benches, and the data generator.

Called as `python torch_side.py '<json>'`; prints one JSON line (the result) on stdout, progress
on stderr. Every timing is taken inside this process with time.perf_counter around the call
being measured, so interpreter start-up and `import torch` are never charged to PyTorch.
"""

import gc
import json
import os
import resource
import sys
import time

import torch

PAGE = 4096


def log(*a):
    print("[torch]", *a, file=sys.stderr, flush=True)


def status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak():
    """Resets VmHWM (and ru_maxrss with it) so the next peak is this operation's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors(v)


def touch(obj):
    """Reads one byte per 4 KiB page of every tensor's storage (and its last byte).

    The same walk as ts_side.js: it proves the bytes are really there (an mmap load pays its
    page faults here) and costs next to nothing for memory that is already resident.
    """
    total = 0
    for t in tensors(obj):
        st = t.untyped_storage()
        n = st.nbytes()
        if n == 0:
            continue
        u = torch.empty(0, dtype=torch.uint8).set_(st)
        total += int(u[::PAGE].sum()) + int(u[n - 1])
    return total


# ---- generators -----------------------------------------------------------------------


def gen_statedict(a):
    """`tensors` float32 tensors totalling about `bytes`, as an OrderedDict state dict."""
    count = a["tensors"]
    per = max(256, (a["bytes"] // 4 // count) // 256 * 256)
    g = torch.Generator().manual_seed(a.get("seed", 0))
    sd = torch.nn.Module().state_dict()  # an OrderedDict with _metadata, like a real one
    for i in range(count):
        shape = [per // 256, 256] if a.get("shape") != "vector" else [per]
        sd[f"layers.{i}.weight"] = torch.randn(shape, generator=g)
    torch.save(sd, a["out"])
    return {"file": a["out"], "bytes": os.path.getsize(a["out"])}


def gen_tiny(a):
    g = torch.Generator().manual_seed(a.get("seed", 1))
    sd = torch.nn.Module().state_dict()
    for i in range(a["count"]):
        sd[f"blocks.{i}.bias"] = torch.randn([a.get("elements", 16)], generator=g)
    torch.save(sd, a["out"])
    return {"file": a["out"], "bytes": os.path.getsize(a["out"])}


# Relative sizes of the convert set, cycled: a few big checkpoints, many small ones.
CONVERT_MIX = [0.25, 0.5, 1, 2, 4, 6, 10, 16, 24, 38.65]


def gen_legacy(a):
    """`count` legacy-format (pre-1.6, `_use_new_zipfile_serialization=False`) checkpoints."""
    out = a["out"]
    os.makedirs(out, exist_ok=True)
    scale = a["total_bytes"] / (sum(CONVERT_MIX) / len(CONVERT_MIX) * a["count"])
    files = []
    for i in range(a["count"]):
        size = int(CONVERT_MIX[i % len(CONVERT_MIX)] * scale)
        g = torch.Generator().manual_seed(1000 + i)
        layers = 2 + i % 7
        sd = torch.nn.Module().state_dict()
        width = 64
        per = max(width, size // 4 // layers - width)
        for l in range(layers):
            sd[f"features.{l}.weight"] = torch.randn([max(1, per // width), width], generator=g)
            sd[f"features.{l}.bias"] = torch.randn([width], generator=g)
        sd["bn.running_mean"] = torch.zeros(width)
        sd["bn.num_batches_tracked"] = torch.tensor(i, dtype=torch.int64)
        path = os.path.join(out, f"ckpt_{i:03d}.pth")
        torch.save(sd, path, _use_new_zipfile_serialization=False)
        files.append(path)
    return {"files": files, "bytes": sum(os.path.getsize(f) for f in files)}


# ---- measured operations --------------------------------------------------------------


def bench_load(a):
    """Times torch.load (load only, and load + page touch) `runs` times after one warm-up."""
    f, mmap = a["file"], a["mmap"]
    load_s, total_s = [], []
    for r in range(a["runs"] + 1):
        gc.collect()
        t0 = time.perf_counter()
        sd = torch.load(f, mmap=mmap)
        t1 = time.perf_counter()
        touch(sd)
        t2 = time.perf_counter()
        if r > 0:
            load_s.append(t1 - t0)
            total_s.append(t2 - t0)
        del sd
    return {"load_s": load_s, "total_s": total_s}


def bench_loop(a):
    """`count` loads of one file in a loop, each result touched and dropped (issue 15):
    peak RSS (VmHWM), the loop's time, each load's time, and RSS before and after."""
    f, mmap = a["file"], a["mmap"]
    gc.collect()
    start = status_kib("VmRSS")
    reset_peak()
    each = []
    t0 = time.perf_counter()
    for _ in range(a["count"]):
        t = time.perf_counter()
        touch(torch.load(f, mmap=mmap))
        each.append(time.perf_counter() - t)
    loop_s = time.perf_counter() - t0
    peak = status_kib("VmHWM")
    gc.collect()
    after = status_kib("VmRSS")
    time.sleep(1.5)  # as the Node side waits, so the idle rows compare like with like
    gc.collect()
    return {"loop_s": loop_s, "each_s": each, "start_kib": start, "peak_kib": peak, "after_kib": after, "idle_kib": status_kib("VmRSS")}


def fsync_path(path):
    """What a durable save adds: fsync the file, then its folder (the new name)."""
    for p, flags in ((path, os.O_RDONLY), (os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)):
        fd = os.open(p, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def bench_save(a):
    """Times torch.save of a state dict loaded (eagerly) from `src`; peak RSS above it.

    `modes`: `plain` (torch.save alone) and/or `fsync` (torch.save, then fsync of the file and
    its folder: what a durable save must do), alternating run by run.
    """
    sd = torch.load(a["src"], mmap=False)
    touch(sd)
    modes = a.get("modes", ["plain"])
    by_mode = {m: {"times_s": [], "peak_above_base": [], "maxrss_above_base": []} for m in modes}
    for r in range(a["runs"] + 1):
        for m in modes:
            if os.path.exists(a["out"]):
                os.unlink(a["out"])
            # Flush earlier runs' dirty pages so no run pays for another's writeback.
            os.sync()
            gc.collect()
            base_kib = status_kib("VmRSS")
            can_reset = reset_peak()
            t0 = time.perf_counter()
            torch.save(sd, a["out"])
            if m == "fsync":
                fsync_path(a["out"])
            t1 = time.perf_counter()
            if r > 0:
                o = by_mode[m]
                o["times_s"].append(t1 - t0)
                if can_reset:
                    # Clamped at 0: the kernel's RSS counters lag by a few pages.
                    o["peak_above_base"].append(max(0, status_kib("VmHWM") - base_kib) * 1024)
                    o["maxrss_above_base"].append(max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_kib) * 1024)
    return {
        "by_mode": by_mode,
        "tensor_bytes": sum(t.untyped_storage().nbytes() for t in tensors(sd)),
        "bytes": os.path.getsize(a["out"]),
    }


def _init_worker():
    # One thread per process: with N processes on N cores, torch's own threads would only
    # fight each other.
    torch.set_num_threads(1)


def convert_one(job):
    from safetensors.torch import save_file

    src, dst = job
    sd = torch.load(src, map_location="cpu", weights_only=True)
    out = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in sd.items()}
    save_file(out, dst)
    return os.path.getsize(src)


def bench_convert(a):
    """The obvious Python converter: torch.load -> fp16 -> safetensors.torch.save_file."""
    import multiprocessing as mp

    os.makedirs(a["outdir"], exist_ok=True)
    jobs = [(f, os.path.join(a["outdir"], os.path.splitext(os.path.basename(f))[0] + ".safetensors")) for f in a["files"]]
    t0 = time.perf_counter()
    if a["jobs"] == 1:
        # One thread, like each of the N processes below and like our one job: on a shared
        # 2-core box torch's default 2 OpenMP threads spin against other load and made this
        # baseline swing 10x between runs.
        _init_worker()
        n = sum(convert_one(j) for j in jobs)
    else:
        with mp.get_context("fork").Pool(a["jobs"], initializer=_init_worker) as pool:
            n = sum(pool.imap_unordered(convert_one, jobs, chunksize=1))
    elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "files": len(jobs), "bytes": n}


def verify_convert(a):
    """Our safetensors output must hold exactly what the Python converter wrote."""
    from safetensors.torch import load_file

    bad = []
    for ours, ref in a["pairs"]:
        if not os.path.exists(ours):
            bad.append(f"{ours}: missing")
            continue
        try:
            x = load_file(ours)
        except Exception as e:  # a corrupt output is a finding, not a crash of the bench
            bad.append(f"{ours}: unreadable by safetensors ({e})")
            continue
        y = load_file(ref)
        if list(sorted(x)) != list(sorted(y)):
            bad.append(f"{ours}: keys differ")
            continue
        for k in y:
            if x[k].dtype != y[k].dtype or x[k].shape != y[k].shape or not torch.equal(x[k], y[k]):
                bad.append(f"{ours}: tensor {k} differs ({x[k].dtype} {tuple(x[k].shape)} vs {y[k].dtype} {tuple(y[k].shape)})")
                break
    return {"checked": len(a["pairs"]), "bad": bad}


def info(_a):
    import platform

    return {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads()}


COMMANDS = {
    "gen-statedict": gen_statedict,
    "gen-tiny": gen_tiny,
    "gen-legacy": gen_legacy,
    "load": bench_load,
    "save": bench_save,
    "convert": bench_convert,
    "verify-convert": verify_convert,
    "info": info,
    "loop": bench_loop,
}

if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(json.dumps(COMMANDS[args["cmd"]](args)), flush=True)
