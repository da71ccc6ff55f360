"""Runs consume_prefix_in_state_dict_if_present on the cases given as JSON on stdin; prints key orders."""
import collections
import json
import sys

from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

out = []
for case in json.load(sys.stdin):
    sd = collections.OrderedDict((k, i) for i, k in enumerate(case["keys"]))
    if case.get("metadata") is not None:
        sd._metadata = collections.OrderedDict((k, {"version": i}) for i, k in enumerate(case["metadata"]))
    consume_prefix_in_state_dict_if_present(sd, case["prefix"])
    md = getattr(sd, "_metadata", None)
    out.append({"items": list(sd.items()), "metadata": None if md is None else [[k, v["version"]] for k, v in md.items()]})
print(json.dumps(out))
