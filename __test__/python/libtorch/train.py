"""Oracle for __test__/libtorch-train.test.ts: resume training across Python and Node.

usage:
  train.py py DIR    writes DIR/configs.json, DIR/data.pt and, per optimizer config NAME,
                     DIR/py_ck_NAME.pt (the seed's general checkpoint after N steps:
                     epoch, model_state_dict, optimizer_state_dict, loss) and
                     DIR/py_final_NAME.pt ({model_state_dict, optimizer_state_dict} after N+M).
  train.py node DIR  reads DIR/node_ck_NAME.pt (Node's checkpoint after N steps) with
                     torch.load(weights_only=True), resumes for M steps and prints, per NAME,
                     JSON: how the checkpoint looks, how its optimizer state's layout differs
                     from PyTorch's own after N steps, and the largest relative difference
                     to Node's own N+M result (DIR/node_final_NAME.pt).
Every step: zero_grad, cross_entropy(model(x[i]), y[i]).backward(), step.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

# One intra-op thread, like the Node side: the test machines are small and shared, where
# spinning OpenMP workers cost far more than they give (and both sides then reduce alike).
torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fixture_classes import TheModelClass  # noqa: E402

N, M, BATCH = 3, 3, 4

CONFIGS = {
    "sgd": ("SGD", {"lr": 0.05}),
    "sgd_momentum_wd": ("SGD", {"lr": 0.02, "momentum": 0.9, "dampening": 0.1, "weight_decay": 1e-3}),
    "sgd_nesterov": ("SGD", {"lr": 0.02, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-4}),
    "sgd_maximize": ("SGD", {"lr": 0.01, "momentum": 0.5, "maximize": True}),
    "adam": ("Adam", {"lr": 1e-3}),
    "adam_amsgrad_wd": ("Adam", {"lr": 2e-3, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 1e-2}),
    "adamw": ("AdamW", {"lr": 1e-3}),
    "adamw_amsgrad": ("AdamW", {"lr": 1e-3, "amsgrad": True, "weight_decay": 0.1, "eps": 1e-6}),
    "rmsprop": ("RMSprop", {"lr": 1e-3}),
    "rmsprop_centered_momentum_wd": ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "centered": True, "momentum": 0.9, "weight_decay": 1e-3}),
    "adagrad": ("Adagrad", {"lr": 0.01}),
    "adagrad_lr_decay_wd": ("Adagrad", {"lr": 0.02, "lr_decay": 0.05, "weight_decay": 1e-3, "initial_accumulator_value": 0.1}),
}


def make_optimizer(name, model):
    cls, kw = CONFIGS[name]
    return getattr(torch.optim, cls)(model.parameters(), **kw)


def train(model, opt, data, start, stop):
    loss = None
    for i in range(start, stop):
        opt.zero_grad()
        loss = F.cross_entropy(model(data["x"][i]), data["y"][i])
        loss.backward()
        opt.step()
    return loss.item()


def rel_diff(a, b):
    return ((a.double() - b.double()).abs() / (1 + b.double().abs())).max().item() if a.numel() else 0.0


def state_diff(got, want):
    """Largest relative difference over the optimizer state's tensors (and `step`)."""
    worst = 0.0
    for pid, st in want["state"].items():
        for k, v in st.items():
            g = got["state"][pid][k]
            worst = max(worst, rel_diff(g, v) if isinstance(v, torch.Tensor) else abs(g - v))
    return worst


def layout(sd):
    """The optimizer state dict's shape: param group options, per-param state entries."""
    groups = [{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in g.items()} for g in sd["param_groups"]]
    state = {
        str(pid): {k: [type(v).__name__, str(v.dtype), list(v.shape), str(v.device)] if isinstance(v, torch.Tensor) else [type(v).__name__] for k, v in st.items()}
        for pid, st in sd["state"].items()
    }
    return {"groups": groups, "group_types": [{k: type(v).__name__ for k, v in g.items()} for g in sd["param_groups"]], "state": state}


def py(d):
    torch.manual_seed(0)
    data = {"x": torch.randn(N + M, BATCH, 3, 32, 32), "y": torch.randint(0, 10, (N + M, BATCH)), "n": N, "m": M}
    torch.save(data, os.path.join(d, "data.pt"))
    with open(os.path.join(d, "configs.json"), "w") as f:
        json.dump({k: {"optim": c, "kwargs": kw} for k, (c, kw) in CONFIGS.items()}, f)
    for name in CONFIGS:
        torch.manual_seed(1)
        model = TheModelClass()
        opt = make_optimizer(name, model)
        loss = train(model, opt, data, 0, N)
        torch.save(
            {"epoch": N, "model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict(), "loss": loss},
            os.path.join(d, f"py_ck_{name}.pt"),
        )
        train(model, opt, data, N, N + M)
        torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict()}, os.path.join(d, f"py_final_{name}.pt"))
    print(json.dumps({"ok": True}))


def node(d):
    data = torch.load(os.path.join(d, "data.pt"), weights_only=True)
    out = {}
    for name in CONFIGS:
        ck = torch.load(os.path.join(d, f"node_ck_{name}.pt"), weights_only=True)
        mine = torch.load(os.path.join(d, f"py_ck_{name}.pt"), weights_only=True)
        model = TheModelClass()
        load = model.load_state_dict(ck["model_state_dict"], strict=True)
        opt = make_optimizer(name, model)
        opt.load_state_dict(ck["optimizer_state_dict"])
        train(model, opt, data, N, N + M)
        final = torch.load(os.path.join(d, f"node_final_{name}.pt"), weights_only=True)
        sd = model.state_dict()
        out[name] = {
            "keys": sorted(ck.keys()),
            "epoch": [type(ck["epoch"]).__name__, ck["epoch"]],
            "loss_type": type(ck["loss"]).__name__,
            "missing": load.missing_keys,
            "unexpected": load.unexpected_keys,
            # Node's optimizer state after N steps must look exactly like PyTorch's after N.
            "layout_node": layout(ck["optimizer_state_dict"]),
            "layout_torch": layout(mine["optimizer_state_dict"]),
            "param_diff": max(rel_diff(sd[k], final["model_state_dict"][k]) for k in sd),
            "state_diff": state_diff(opt.state_dict(), final["optimizer_state_dict"]),
            "step_torch": [float(s["step"]) for s in opt.state_dict()["state"].values() if "step" in s][:1],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    {"py": py, "node": node}[sys.argv[1]](sys.argv[2])
