"""load_state_dict cases from stdin JSON; prints PyTorch's outcome (error text or incompatible keys)."""
import collections
import json
import sys

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import models  # noqa: E402

out = []
for case in json.load(sys.stdin):
    m = models.build(case["model"])
    sd = collections.OrderedDict()
    for k, shape in case["entries"]:
        sd[k] = 3 if shape is None else torch.zeros(shape, dtype=torch.int64 if k.endswith("num_batches_tracked") else torch.float32)
    if case.get("metadata") is not None:
        sd._metadata = collections.OrderedDict((k, {"version": v}) for k, v in case["metadata"])
    try:
        r = m.load_state_dict(sd, strict=case["strict"])
        out.append({"error": None, "missing": r.missing_keys, "unexpected": r.unexpected_keys})
    except RuntimeError as e:
        out.append({"error": str(e)})
print(json.dumps(out))
