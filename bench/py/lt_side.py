"""PyTorch's half of the libtorch bench (bench/libtorch.js) and of scripts/gpu-check.js.

Called as `python lt_side.py '<json>'` where the JSON is one command object or a list of
them (one process for several commands saves `import torch` and CUDA start-up on the GPU
machine); prints one JSON line on stdout: the result, or the list of results. Progress goes
to stderr. Timings are taken in-process around the measured call only (time.perf_counter,
with torch.cuda.synchronize on CUDA), exactly as bench/lib/lt_side.js does on our side.

Needs only torch (no numpy, no torchvision): the GPU machine has nothing else.
"""

import ctypes
import gc
import hashlib
import json
import os
import sys
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lt_models  # noqa: E402


def log(*a):
    print("[torch]", *a, file=sys.stderr, flush=True)


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def free(device):
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def sha256(t):
    """sha256 of a tensor's elements in C order (host copy for device tensors)."""
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous()
    n = t.numel() * t.element_size()
    if n == 0:
        return hashlib.sha256(b"").hexdigest()
    # A buffer over the tensor's memory: no copy, and hashlib releases the GIL on it.
    return hashlib.sha256((ctypes.c_char * n).from_address(t.data_ptr())).hexdigest()


def flat_tensors(obj, prefix=""):
    """(key, tensor) pairs of nested dicts/lists, keys joined with '/'."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from flat_tensors(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from flat_tensors(v, f"{prefix}/{i}" if prefix else str(i))


def describe_value(obj):
    """Per tensor: dtype, shape, stride, offset, device, sha256, and which storage it shares."""
    items = list(flat_tensors(obj))
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as ex:
        digests = list(ex.map(lambda kv: sha256(kv[1]), items))
    groups = {}
    out = OrderedDict()
    for (k, t), d in zip(items, digests):
        sid = (str(t.device), t.untyped_storage().data_ptr())
        first = groups.setdefault(sid, k)
        out[k] = {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "stride": list(t.stride()),
            "offset": t.storage_offset(),
            "device": str(t.device),
            "sha256": d,
            "storage": first,
        }
    return out


# ---- data ---------------------------------------------------------------------------------


def gen_big(a):
    """A state dict of `tensors` float32 tensors, `bytes` in all, random (made on the GPU when
    there is one: much faster than CPU randn), saved from the host like a usual checkpoint."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(a.get("seed", 0))
    n = a["bytes"] // 4 // a["tensors"]
    sd = OrderedDict()
    for i in range(a["tensors"]):
        sd[f"layers.{i}.weight"] = torch.randn(n, generator=g, device=dev).cpu()
    t0 = time.perf_counter()
    torch.save(sd, a["out"])
    return {"file": a["out"], "bytes": os.path.getsize(a["out"]), "save_s": time.perf_counter() - t0}


def gen_mixed(a):
    """Dtypes, views sharing a storage, offsets, a 0-d and an empty tensor, saved from
    `device` (so the file records it), plus one CPU tensor in the same file."""
    dev = a["device"]
    torch.manual_seed(a.get("seed", 0))
    base = torch.randn(64, 32, device=dev)
    sd = OrderedDict()
    sd["f32"] = base
    sd["f32_t"] = base.t()
    sd["f32_rows"] = base[3:7]
    sd["f16"] = torch.randn(100, device=dev).half()
    sd["bf16"] = torch.randn(10, 10, device=dev).bfloat16()
    sd["f64"] = torch.randn(5, 5, dtype=torch.float64, device=dev)
    sd["i64"] = torch.arange(50, device=dev)
    sd["i32"] = torch.randint(-1000, 1000, (7, 3), dtype=torch.int32, device=dev)
    sd["u8"] = torch.randint(0, 255, (17,), dtype=torch.uint8, device=dev)
    sd["bool"] = torch.rand(33, device=dev) > 0.5
    sd["scalar"] = torch.tensor(3.5, device=dev)
    sd["empty"] = torch.empty(0, 4, device=dev)
    sd["host"] = torch.randn(8)
    sd["nested"] = {"list": [torch.randn(3, device=dev), base[0]]}
    torch.save(sd, a["out"])
    return {"file": a["out"]}


def randomize_bn(m):
    """BatchNorm with non-trivial running statistics and affine parameters, so eval-mode
    forwards really use them."""
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)


def gen_models(a):
    d = a["dir"]
    out = {}
    for name, batch in a["batch"].items():
        torch.manual_seed(a.get("seed", 0))
        m = lt_models.build(name)
        randomize_bn(m)
        torch.save(m.state_dict(), os.path.join(d, f"{name}.pt"))
        torch.save(torch.randn(lt_models.input_shape(name, batch)), os.path.join(d, f"{name}_x.pt"))
        out[name] = sum(p.numel() for p in m.parameters())
    torch.manual_seed(1)
    torch.save(torch.randint(0, 10, (a["batch"].get("seed", 64),)), os.path.join(d, "seed_y.pt"))
    return {"params": out}


# ---- measurements -------------------------------------------------------------------------


def describe(a):
    t0 = time.perf_counter()
    v = torch.load(a["file"], map_location=a.get("map_location"), weights_only=True)
    sync("cuda" if torch.cuda.is_available() else "cpu")
    load_s = time.perf_counter() - t0
    out = {"load_s": load_s, "tensors": describe_value(v)}
    del v
    free("cuda" if torch.cuda.is_available() else "cpu")
    return out


def load_time(a):
    dev = a["device"]
    times = []
    count = None
    for i in range(a["runs"] + 1):
        t0 = time.perf_counter()
        sd = torch.load(a["file"], map_location=dev, weights_only=True)
        sync(dev)
        dt = time.perf_counter() - t0
        count = len(sd)
        if any(t.device != torch.device(dev) for t in sd.values()):
            raise SystemExit(f"torch.load put a tensor elsewhere than {dev}")
        del sd
        # Back to torch's caching allocator (no empty_cache): our side's freed tensors go
        # back to the same allocator, so both reuse the blocks of the previous run.
        gc.collect()
        if i > 0:
            times.append(dt)
        log(f"torch.load(map_location={dev!r}) {'warm-up' if i == 0 else f'run {i}'}: {dt:.3f} s")
    return {"load_s": times, "tensors": count}


def h2d(a):
    """Host-to-device bandwidth of plain copies: the physical reference for a load to the GPU."""
    dev = a["device"]
    n = a["bytes"]
    dst = torch.empty(n, dtype=torch.uint8, device=dev)
    out = {}
    for kind in ("pinned", "pageable"):
        src = torch.ones(n, dtype=torch.uint8, pin_memory=(kind == "pinned"))
        best = None
        for _ in range(a["runs"] + 1):
            sync(dev)
            t0 = time.perf_counter()
            dst.copy_(src, non_blocking=(kind == "pinned"))
            sync(dev)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        out[kind + "_gbps"] = n / best / 1e9
        del src
    del dst
    free(dev)
    return out


def forward(a):
    dev = a["device"]
    d = a["dir"]
    name = a["model"]
    m = lt_models.build(name)
    m.load_state_dict(torch.load(os.path.join(d, f"{name}.pt"), weights_only=True))
    m.eval().to(dev)
    x = torch.load(os.path.join(d, f"{name}_x.pt"), weights_only=True).to(dev)
    with torch.no_grad():
        y = m(x)
        if a.get("out"):
            torch.save(y.cpu(), a["out"])
        for _ in range(a.get("warmup", 3)):
            m(x)
        sync(dev)
        per = []
        for _ in range(a["runs"]):
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(a["iters"]):
                m(x)
            sync(dev)
            per.append((time.perf_counter() - t0) / a["iters"])
    del m, x, y
    free(dev)
    return {"forward_s": per}


def train(a):
    """Two optimizer steps of the seed model on `device`: the gradients of each step, the loss,
    the final parameters and the optimizer state, so our side can check its backward (against
    step 0's gradients) and its optimizer (fed these very gradients) separately."""
    dev = a["device"]
    d = a["dir"]
    m = lt_models.build("seed")
    m.load_state_dict(torch.load(os.path.join(d, "seed.pt"), weights_only=True))
    m.to(dev)
    x = torch.load(os.path.join(d, "seed_x.pt"), weights_only=True).to(dev)
    y = torch.load(os.path.join(d, "seed_y.pt"), weights_only=True).to(dev)
    params = list(m.named_parameters())
    if a["optim"] == "sgd":
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses, grads = [], []
    for _ in range(a.get("steps", 2)):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        losses.append(loss.item())
        grads.append(OrderedDict((n, p.grad.detach().cpu().clone()) for n, p in params))
        opt.step()
    state = []
    for _, p in params:
        st = opt.state[p]
        state.append(OrderedDict((k, v.detach().cpu().clone()) for k, v in st.items() if isinstance(v, torch.Tensor) and k != "step"))
    rec = {
        "losses": losses,
        "grads": grads,
        "final": OrderedDict((n, p.detach().cpu().clone()) for n, p in params),
        "state": state,
        "names": [n for n, _ in params],
    }
    torch.save(rec, a["out"])
    del m, opt
    free(dev)
    # torch picks its foreach implementation on CUDA by default, the single-tensor one on CPU.
    return {"losses": losses, "foreach": str(dev).startswith("cuda")}


def check_resaved(a):
    """Loads a file our side re-saved (device tensors and all) and describes it."""
    return describe({"file": a["file"], "map_location": a.get("map_location")})


def info(_a):
    cuda = torch.cuda.is_available()
    return {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "cuda": cuda,
        "device_count": torch.cuda.device_count() if cuda else 0,
        "device_name": torch.cuda.get_device_name(0) if cuda else None,
        "threads": torch.get_num_threads(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


COMMANDS = {
    "info": info,
    "gen-big": gen_big,
    "gen-mixed": gen_mixed,
    "gen-models": gen_models,
    "describe": describe,
    "check-resaved": check_resaved,
    "load-time": load_time,
    "h2d": h2d,
    "forward": forward,
    "train": train,
}


def run(a):
    fn = COMMANDS.get(a.get("cmd"))
    if fn is None:
        raise SystemExit(f"unknown command {a.get('cmd')!r}")
    return fn(a)


def main():
    arg = json.loads(sys.argv[1])
    res = [run(a) for a in arg] if isinstance(arg, list) else run(arg)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
