"""Distributed checkpoints (torch.distributed.checkpoint, DCP) from real torch 2.11, and the
oracle the DCP tests compare against. Seeds are fixed.

    python make_dcp.py make OUT        # OUT/<case>/ (DCP folders) and OUT/<case>.pt
                                       # (format_utils.dcp_to_torch_save of each folder)
    python make_dcp.py compare A B     # torch.load(A) and torch.load(B) are the same value:
                                       # same container kinds, keys and order, tensors equal
                                       # bit for bit with the same dtype and shape
    python make_dcp.py dcpload DIR REF # DIR (a DCP folder someone else wrote) loaded by
                                       # torch: dcp_to_torch_save, and dcp.load(no_dist=True)
                                       # into a zeroed copy of REF's state dict; both = REF
    python make_dcp.py stcompare OUT REF SELECT DTYPE
                                       # OUT (a safetensors file, or an *.index.json and its
                                       # shards) = REF[SELECT] (`-`: all of REF) with float
                                       # tensors cast to DTYPE (`-`: none) by torch's .to()
    python make_dcp.py bigdcp DIR GIB  # a DCP of about GIB GiB of float32 (bench input)

Cases (OUT/<case>):
  nested     nested dicts and lists, every common dtype, 0-d / empty / non-contiguous
             tensors, non-tensor values; FileSystemWriter(thread_count=3): 3 .distcp files
  model      an nn model's state dict and its Adam optimizer's state after one step
  evil       a .metadata whose pickle calls os.system (what a hostile folder looks like)
  sharded    two gloo processes on this machine (FSDP-style): DTensors sharded on dim 0 and
             dim 1 over 2 ranks, a replicated one, and a non-tensor value: each sharded
             tensor is 2 chunks in 2 files (__0_0.distcp, __1_0.distcp)
"""

import os
import pickle
import sys
import tempfile
import warnings

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemWriter
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

assert torch.__version__.startswith("2.11"), torch.__version__
warnings.filterwarnings("ignore")


def nested_sd():
    g = torch.Generator().manual_seed(17)
    f = torch.randn(4, 5, generator=g)
    dt = {
        name: (f * 3).to(getattr(torch, name))
        for name in [
            "float32",
            "float64",
            "float16",
            "bfloat16",
            "int8",
            "uint8",
            "int16",
            "int32",
            "int64",
            "bool",
        ]
    }
    dt["complex64"] = torch.complex(f, -f)
    return {
        "dtypes": dt,
        "shapes": {
            "scalar": torch.tensor(2.5),
            "empty": torch.zeros(0, 3),
            "transposed": torch.arange(12.0).reshape(3, 4).t(),
            "big": torch.randn(64, 33, generator=g),
        },
        "layers": [
            {"w": torch.randn(3, 2, generator=g), "b": torch.zeros(3)},
            {"w": torch.randn(2, 3, generator=g), "b": torch.ones(2)},
        ],
        "epoch": 3,
        "lr": 0.125,
        "name": "run-17",
        "none": None,
        "tags": ["a", "b"],
        "flags": {"ema": True},
    }


def model_sd():
    torch.manual_seed(17)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 6)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optim": opt.state_dict()}


def sharded_worker(rank, world, store, out):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    g = torch.Generator().manual_seed(17)
    full = {
        "row": torch.randn(6, 4, generator=g),
        "col": torch.randn(3, 10, generator=g).to(torch.bfloat16),
        "odd": torch.arange(7 * 3, dtype=torch.int64).reshape(7, 3),
        "rep": torch.randn(5, generator=g),
    }
    sd = {
        "model": {
            "row": distribute_tensor(full["row"], mesh, [Shard(0)]),
            "col": distribute_tensor(full["col"], mesh, [Shard(1)]),
            "odd": distribute_tensor(full["odd"], mesh, [Shard(0)]),
            "rep": distribute_tensor(full["rep"], mesh, [Replicate()]),
        },
        "step": 11,
    }
    dcp.save(sd, checkpoint_id=out)
    dist.barrier()
    dist.destroy_process_group()


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def make(out):
    os.makedirs(out, exist_ok=True)
    dcp.save(
        nested_sd(),
        storage_writer=FileSystemWriter(os.path.join(out, "nested"), thread_count=3),
        no_dist=True,
    )
    dcp.save(model_sd(), checkpoint_id=os.path.join(out, "model"), no_dist=True)
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(
            sharded_worker,
            args=(2, os.path.join(tmp, "store"), os.path.join(out, "sharded")),
            nprocs=2,
            join=True,
            start_method="fork",
        )
    os.makedirs(os.path.join(out, "evil"), exist_ok=True)
    with open(os.path.join(out, "evil", ".metadata"), "wb") as f:
        pickle.dump(Evil(), f, protocol=4)
    for case in ["nested", "model", "sharded"]:
        dcp_to_torch_save(os.path.join(out, case), os.path.join(out, case + ".pt"))


def same(a, b, where="root"):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype, f"{where}: {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: {a.shape} != {b.shape}"
        assert a.requires_grad == b.requires_grad, where
        av, bv = a.contiguous(), b.contiguous()
        if av.dtype.is_complex:
            av, bv = torch.view_as_real(av), torch.view_as_real(bv)
        if av.numel():
            assert torch.equal(av.reshape(-1).view(torch.uint8), bv.reshape(-1).view(torch.uint8)), f"{where}: values"
        return
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: len {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def load(p):
    return torch.load(p, map_location="cpu", weights_only=False)


def zeroed(v):
    if isinstance(v, torch.Tensor):
        return torch.zeros_like(v)
    if isinstance(v, dict):
        return {k: zeroed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [zeroed(x) for x in v]
    return v


def dcpload(d, ref):
    want = load(ref)
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "back.pt")
        dcp_to_torch_save(d, p)
        same(load(p), want, "dcp_to_torch_save")
    sd = zeroed(want)
    dcp.load(sd, checkpoint_id=d, no_dist=True)
    same(sd, want, "dcp.load")


def stcompare(out, ref, select, dtype):
    import json
    from safetensors.torch import load_file

    want = load(ref)
    if select != "-":
        for part in select.split("/"):
            want = want[part]
    if dtype != "-":
        to = getattr(torch, dtype)
        want = {k: v.to(to) if v.is_floating_point() else v for k, v in want.items()}
    if out.endswith(".index.json"):
        idx = json.load(open(out))
        got = {}
        for f in sorted(set(idx["weight_map"].values())):
            got.update(load_file(os.path.join(os.path.dirname(out), f)))
        assert set(idx["weight_map"]) == set(got), "index and shards disagree"
        assert len(set(idx["weight_map"].values())) > 1, "expected several shards"
    else:
        got = load_file(out)
    assert sorted(got) == sorted(want), f"keys {sorted(got)} != {sorted(want)}"
    for k in want:
        same(got[k], want[k], k)


def bigdcp(d, gib):
    n = int(float(gib) * 1024)  # 1 MiB tensors
    g = torch.Generator().manual_seed(17)
    sd = {f"layers.{i}.weight": torch.randn(1024, 256, generator=g) for i in range(n)}
    dcp.save(sd, storage_writer=FileSystemWriter(d, thread_count=4), no_dist=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "compare":
        same(load(sys.argv[2]), load(sys.argv[3]))
    elif cmd == "dcpload":
        dcpload(sys.argv[2], sys.argv[3])
    elif cmd == "stcompare":
        stcompare(*sys.argv[2:6])
    elif cmd == "bigdcp":
        bigdcp(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")
