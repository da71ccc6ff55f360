"""File interop with real PyTorch for __test__/nn-interop.test.ts. Usage: crosscheck.py MODE ARGS...

Model classes are imported into __main__ and given __module__ = '__main__', so whole-model
files pickle and unpickle as __main__.TheModelClass / BNNet / LSTMNet, like the seed's script.
Prints one JSON object.
"""
import collections
import json
import sys

import torch
import torch.nn as nn
import torch.optim as optim

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import models  # noqa: E402
from encode import enc  # noqa: E402
from models import BNNet, LSTMNet, TheModelClass  # noqa: E402,F401

for _c in (TheModelClass, BNNet, LSTMNet):
    _c.__module__ = "__main__"


def sums(sd):
    return {k: [list(v.shape), str(v.dtype)[6:], float(v.double().sum()), float(v.double().abs().sum())] for k, v in sd.items()}


def inputs(name):
    if name == "lstm":
        return torch.randint(0, 20, (2, 7))
    if name == "bn":
        return torch.randn(2, 3, 8, 8)
    return torch.randn(2, 3, 32, 32)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    torch.manual_seed(1)
    if mode == "load_sd":  # name path [strip]: TS state dict -> strict load_state_dict
        name, path = args[0], args[1]
        sd = torch.load(path)
        if len(args) > 2:
            nn.modules.utils.consume_prefix_in_state_dict_if_present(sd, "module.")
        m = models.build(name)
        r = m.load_state_dict(sd, strict=True)
        m.eval()
        with torch.no_grad():
            m(inputs(name.replace("dp", "seed")) if name != "dp" else inputs("seed"))
        return {"missing": r.missing_keys, "unexpected": r.unexpected_keys, "sums": sums(m.state_dict()), "metadata": list(sd._metadata.keys())}
    if mode == "save_sd":  # name path: Python state dict for TS
        m = models.build(name := args[0])
        if name == "bn":  # non-trivial running stats
            m.train()
            with torch.no_grad():
                m(inputs("bn"))
        torch.save(m.state_dict(), args[1])
        return {"sums": sums(m.state_dict())}
    if mode == "load_whole":  # path name: TS whole model -> working module
        m = torch.load(args[0], weights_only=False)
        pickled = enc(m)  # as loaded, before eval() flips `training`
        m.eval()
        with torch.no_grad():
            out = m(inputs(args[1]))
        return {"class": f"{type(m).__module__}.{type(m).__name__}", "out_shape": list(out.shape), "sums": sums(m.state_dict()), "pickle": pickled}
    if mode == "save_whole":  # name path
        m = models.build(args[0])
        torch.save(m, args[1])
        return {"sums": sums(m.state_dict()), "pickle": enc(m)}
    if mode == "load_optim":  # kind path: TS optimizer state dict -> optimizer.load_state_dict
        m = models.TheModelClass()
        o = optim.SGD(m.parameters(), lr=0.5) if args[0] == "sgd" else optim.Adam(m.parameters())
        o.load_state_dict(torch.load(args[1]))
        for p in m.parameters():
            p.grad = torch.ones_like(p)
        o.step()  # the loaded state must be usable
        return {"loaded": enc(torch.load(args[1])), "after_load_groups": enc(o.state_dict()["param_groups"])}
    if mode == "save_optim":  # kind path: after one step (state tensors present)
        m = models.TheModelClass()
        o = optim.SGD(m.parameters(), lr=0.01, momentum=0.9) if args[0] == "sgd" else optim.Adam(m.parameters(), lr=0.01)
        for p in m.parameters():
            p.grad = torch.ones_like(p)
        o.step()
        torch.save(o.state_dict(), args[1])
        return {"sd": enc(o.state_dict()), "sums": {str(k): {sk: float(sv.double().sum()) for sk, sv in v.items()} for k, v in o.state_dict()["state"].items()}}
    if mode == "save_dp":  # path [double]
        inner = models.TheModelClass()
        m = nn.DataParallel(nn.DataParallel(inner)) if len(args) > 1 else nn.DataParallel(inner)
        torch.save(m.state_dict(), args[0])
        return {"sums": sums(inner.state_dict())}
    raise SystemExit(f"unknown mode {mode}")


print(json.dumps(main()))
