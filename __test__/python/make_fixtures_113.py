#!/usr/bin/python3
"""Fixtures from torch 1.13 (Debian's python3-torch, run by /usr/bin/python3).

    /usr/bin/python3 make_fixtures_113.py OUTDIR

Called by make_fixtures.py, which then writes every sidecar with torch 2.11 (the question the
tests ask is "what does current torch read from a file old torch wrote"). Prints a JSON list
of {"file", "description", "tags"} on stdout. Files: t113_*.
1.13's zip writer predates the `byteorder`, `.format_version`, `.storage_alignment` and
`.data/serialization_id` records and its storage keys may be pointer-like; its legacy writer
emits `('module', cls, source_file, source)` persistent ids for whole modules.
"""
import collections
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.optim as optim  # noqa: E402

import fixture_classes  # noqa: E402

fixture_classes.install_in_main()
from fixture_classes import BNModel, TheModelClass  # noqa: E402

MADE = []


def save(out, obj, name, description, tags, legacy):
    fname = f"t113_{name}{'.legacy' if legacy else ''}.pt"
    torch.save(obj, os.path.join(out, fname), _use_new_zipfile_serialization=not legacy)
    MADE.append({"file": fname, "description": f"torch 1.13: {description}", "tags": ["legacy" if legacy else "zip"] + tags})


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    model = TheModelClass()
    optimizer = optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    for legacy in (False, True):
        save(out, model.state_dict(), "seed_state_dict", "TheModelClass state_dict", ["seed", "state_dict"], legacy)
    crit = nn.CrossEntropyLoss()
    for _ in range(3):
        optimizer.zero_grad()
        loss = crit(model(torch.randn(4, 3, 32, 32)), torch.randint(0, 10, (4,)))
        loss.backward()
        optimizer.step()
    ckpt = {"epoch": 3, "model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer.state_dict(),
            "loss": loss}
    for legacy in (False, True):
        save(out, optimizer.state_dict(), "seed_optimizer", "SGD momentum state after 3 steps", ["seed", "optimizer"], legacy)
        save(out, ckpt, "seed_checkpoint", "general checkpoint", ["seed", "checkpoint"], legacy)
        save(out, model, "seed_whole_model", "torch.save(model) of __main__.TheModelClass", ["seed", "whole_model"], legacy)
    bn = BNModel()
    bn.train()
    for _ in range(2):
        bn(torch.randn(2, 3, 8, 8))
    save(out, bn.state_dict(), "bn_state_dict", "BatchNorm2d model state_dict", ["state_dict", "batchnorm"], True)
    base = torch.arange(10.0)
    save(out, collections.OrderedDict(base=base, view=base[3:7], step=base[::3]), "views", "views of one storage",
         ["views"], True)
    json.dump(MADE, sys.stdout)


if __name__ == "__main__":
    main()
