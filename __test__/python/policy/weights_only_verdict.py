#!/usr/bin/env python3
"""Real torch's weights-only verdict on many files, in one process (inspect-policy.test.ts).

stdin: a JSON list of paths. stdout: a JSON list, one entry per path:
  {"verdict": true}   torch.load(path, weights_only=True) succeeds
  {"verdict": false, "error": "..."}   torch's weights-only unpickler refuses it ("Weights only
                      load failed": its policy, or a pickle it cannot parse); for a bare
                      pickle (no torch.save container: torch.load says "Invalid magic
                      number") the weights-only Unpickler's own verdict on the whole file
  {"verdict": null, "error": "..."}    torch refuses it for damage (not the policy)

Nothing is ever loaded with weights_only=False: attack fixtures would run their payloads.
"""
import io
import json
import sys
import warnings

import torch
from torch import _weights_only_unpickler as wo

POLICY = "Weights only load failed"


def bare_pickle_verdict(path):
    """The weights-only Unpickler on the whole file; None when the file is not one pickle."""
    with open(path, "rb") as f:
        data = f.read()
    buf = io.BytesIO(data)
    try:
        wo.Unpickler(buf, encoding="utf-8").load()
    except wo.UnpicklingError as e:
        return False, str(e)
    except Exception as e:  # damage: truncated, not a pickle, ...
        return None, f"{type(e).__name__}: {e}"
    if buf.tell() != len(data):
        return None, "more bytes follow the pickle"
    return True, None


def verdict(path):
    try:
        # map_location: a CUDA-saved file is judged on this CPU-only machine too.
        torch.load(path, weights_only=True, map_location="cpu")
        return {"verdict": True}
    except Exception as e:
        msg = f"{type(e).__name__}: {e}"
        if POLICY in str(e) or "Cannot use ``weights_only=True`` with files saved in the legacy .tar format" in str(e) \
                or "Cannot use ``weights_only=True`` with TorchScript archives" in str(e):
            return {"verdict": False, "error": msg[:300]}
        if "Invalid magic number" not in str(e):
            return {"verdict": None, "error": msg[:300]}
        # Not a torch.save container at all: judge the bare pickle with torch's Unpickler.
        ok, why = bare_pickle_verdict(path)
        if ok is None:
            return {"verdict": None, "error": msg[:300]}
        return {"verdict": ok, "error": (why or msg)[:300], "bare_pickle": True}


def main():
    warnings.simplefilter("ignore")
    paths = json.load(sys.stdin)
    json.dump([verdict(p) for p in paths], sys.stdout)


if __name__ == "__main__":
    main()
