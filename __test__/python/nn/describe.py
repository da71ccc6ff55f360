"""Prints, for each model in models.MODEL_NAMES, its pickled __dict__ tree and state_dict (typed JSON)."""
import json
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import models  # noqa: E402
from encode import enc  # noqa: E402

torch.manual_seed(0)
out = {}
for name in models.MODEL_NAMES:
    m = models.build(name)
    out[name] = {"pickle": enc(m), "state_dict": enc(m.state_dict())}
print(json.dumps(out))
