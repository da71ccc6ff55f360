#!/usr/bin/env python3
"""TorchScript fixtures (torch.jit.save archives) from real torch, for the jit reader's tests.

Writes into OUT (default __test__/fixtures/generated/jit): traced_seed.pt (the seed's
TheModelClass traced, seed 0), scripted_control.pt (script with control flow and nested
submodules), batchnorm.pt (BatchNorm2d with running stats, saved in eval mode), attrs.pt
(int, str, float, bool, list, dict attributes and a plain tensor attribute that is neither
parameter nor buffer), extra_files.pt (saved with _extra_files), constants.pt (a traced
tensor constant in constants.pkl), attack_os_system.pt (data.pkl naming os.system) and jit.json: per file, what torch.jit.load(p) says
(oracle.jit_describe: state dict tensors, parameters/buffers/children per module, training
flags, the listed attributes, extra files).
"""
import json
import os
import struct
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from typing import Dict, List, Tuple  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import oracle  # noqa: E402
from fixture_classes import TheModelClass  # noqa: E402

DEFAULT_OUT = os.path.join(HERE, "..", "fixtures", "generated", "jit")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.lin(x))


class Control(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(4, 2, bias=False)
        self.steps = 3

    def forward(self, x):
        for _ in range(self.steps):
            x = self.blocks(x)
        if x.sum() > 0:
            return self.head(x)
        return -self.head(x)


class BN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Attrs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.count = 7
        self.label = "héllo"
        self.scale = 0.25
        self.flag = True
        self.sizes = [1, 2, 3]
        self.table = {"a": 1.5, "b": -2.0}
        self.table_int = {"x": 1}
        self.plain = torch.arange(6, dtype=torch.float64).reshape(2, 3)

    def forward(self, x):
        return self.lin(x) * self.scale + self.count


ATTRS = ["count", "label", "scale", "flag", "sizes", "table", "table_int", "plain", "training"]


class Const(nn.Module):
    def forward(self, x):
        return x * torch.tensor([1.0, 2.0, 3.0])


class Multi(nn.Module):
    """Many TorchScript types in and out, a buffer, dropout (train/eval differ), a second method."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 64)
        self.drop = nn.Dropout(0.5)
        self.register_buffer("value", torch.tensor([42.0]))

    def forward(self, inputs: Dict[str, torch.Tensor], scale: float, n: int,
                tag: str) -> Tuple[torch.Tensor, List[torch.Tensor], Dict[str, torch.Tensor], str, int, List[float]]:
        x = self.drop(self.lin(inputs["x"])) * scale
        return (x + inputs["y"].sum() + self.value, [x] * n, {"double": 2 * x}, tag + "!", n + 1, [scale, 1.5])

    @torch.jit.export
    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 2 * x + y + self.value


PEER = os.path.join(HERE, "..", "..", "..", "shared", "peer-corpus")


def write_runs(out):
    """runs.pt: per case, a file, a method, its arguments and what real torch returned (eval
    mode), for the libtorch execution tests. `peer:` files are the tch-rs fixtures of the
    project's peer corpus, run as tch-rs's own tests call them."""
    torch.manual_seed(10)
    cases = {}

    def case(name, file, method, args):
        path = os.path.join(PEER, file[5:]) if file.startswith("peer:") else os.path.join(out, file)
        m = torch.jit.load(path)
        m.eval()
        with torch.no_grad():
            result = getattr(m, method)(*args)
        cases[name] = {"file": file, "method": method, "args": list(args), "out": result}

    case("traced_seed", "traced_seed.pt", "forward", [torch.randn(2, 3, 32, 32)])
    case("scripted_control", "scripted_control.pt", "forward", [torch.randn(5, 4)])
    case("batchnorm", "batchnorm.pt", "forward", [torch.randn(2, 3, 8, 8)])
    case("multi_forward", "multi.pt", "forward",
         [{"x": torch.randn(2, 3), "y": torch.randn(4)}, 0.5, 2, "hi"])
    case("multi_add", "multi.pt", "add", [torch.randn(3), torch.randn(3)])
    case("tch_foo", "peer:tch-rs/foo.pt", "forward", [torch.randn(3), torch.randn(3)])
    case("tch_foo1", "peer:tch-rs/foo1.pt", "forward", [torch.randn(2, 2), torch.randn(2, 2)])
    case("tch_foo2", "peer:tch-rs/foo2.pt", "forward", [torch.randn(3), torch.randn(3)])
    case("tch_foo3", "peer:tch-rs/foo3.pt", "forward", [torch.randn(4, 3)])
    case("tch_foo4", "peer:tch-rs/foo4.pt", "forward", [(1.5, 2.5, 3)])
    case("tch_foo5", "peer:tch-rs/foo5.pt", "forward", [["ab", "cde", "f"]])
    case("tch_foo8", "peer:tch-rs/foo8.pt", "generate", [{"foo": torch.randn(2), "bar": torch.randn(3)}])
    torch.save(cases, os.path.join(out, "runs.pt"))


def _binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def write_os_system(src, dst):
    """A TorchScript archive whose data.pkl holds `os.system('echo pwned')` as a module
    attribute: torch.jit.load would refuse the global; our reader refuses it under weightsOnly
    and keeps it inert without. Every other record is extra_files.pt's."""
    pkl = (b"\x80\x02c__torch__\nBlock\n)\x81}(" + _binunicode("training") + b"\x88"
           + _binunicode("evil") + b"cos\nsystem\n" + _binunicode("echo pwned") + b"\x85Rub.")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = pkl if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, data)


def main():
    args = [a for a in sys.argv[1:] if a != "--small"]
    out = os.path.abspath(args[0] if args else DEFAULT_OUT)
    os.makedirs(out, exist_ok=True)
    files = {}

    # --small: leave out the 250 KB seed model (the copy committed for the Rust reader test,
    # crate/core/tests/torchscript/, is written with it).
    if "--small" not in sys.argv:
        torch.manual_seed(0)
        seed = TheModelClass()
        torch.jit.save(torch.jit.trace(seed, torch.randn(1, 3, 32, 32)), os.path.join(out, "traced_seed.pt"))
        files["traced_seed.pt"] = {"description": "the seed's TheModelClass, torch.jit.trace, seed 0", "attrs": []}

    torch.manual_seed(1)
    torch.jit.save(torch.jit.script(Control()), os.path.join(out, "scripted_control.pt"))
    files["scripted_control.pt"] = {"description": "torch.jit.script: loop, if, Sequential of submodules",
                                    "attrs": ["steps"]}

    torch.manual_seed(2)
    bn = BN()
    bn.train()
    for _ in range(3):
        bn(torch.randn(2, 3, 8, 8))
    bn.eval()
    torch.jit.save(torch.jit.script(bn), os.path.join(out, "batchnorm.pt"))
    files["batchnorm.pt"] = {"description": "Conv2d + BatchNorm2d after 3 training steps, saved in eval()",
                             "attrs": []}

    torch.manual_seed(3)
    torch.jit.save(torch.jit.script(Attrs()), os.path.join(out, "attrs.pt"))
    files["attrs.pt"] = {"description": "int, str, float, bool, list, dict attributes and a plain tensor attribute",
                         "attrs": ATTRS}

    torch.manual_seed(4)
    extra = {"meta.json": json.dumps({"name": "demo", "version": 2}), "notes.txt": "saved with _extra_files"}
    torch.jit.save(torch.jit.script(Block()), os.path.join(out, "extra_files.pt"), _extra_files=extra)
    files["extra_files.pt"] = {"description": "torch.jit.save(..., _extra_files=...)", "attrs": []}

    torch.jit.save(torch.jit.trace(Const(), torch.randn(3)), os.path.join(out, "constants.pt"))
    files["constants.pt"] = {"description": "a traced tensor constant (constants.pkl, constants/0)", "attrs": []}

    write_os_system(os.path.join(out, "extra_files.pt"), os.path.join(out, "attack_os_system.pt"))

    torch.manual_seed(5)
    multi = Multi()
    multi.eval()
    torch.jit.save(torch.jit.script(multi), os.path.join(out, "multi.pt"))
    files["multi.pt"] = {"description": "dict/float/int/str in, tuple of tensor, list, dict, str, int, list of float out; "
                                        "dropout; a buffer; an exported second method", "attrs": []}
    if "--small" not in sys.argv:
        write_runs(out)

    for name, entry in files.items():
        entry["torch"] = oracle.jit_describe(os.path.join(out, name), entry["attrs"])
    with open(os.path.join(out, "jit.json"), "w", encoding="utf-8") as f:
        json.dump({"torch": torch.__version__.split("+", 1)[0], "files": files}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"make_jit_fixtures: {len(files)} TorchScript archives in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
