"""A typed JSON encoding of Python values, mirrored by encodePy() in __test__/nn-helpers.ts."""
import collections
import torch


def enc(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, torch.nn.Parameter):
        return {"param": [list(v.shape), str(v.dtype)[6:], v.requires_grad]}
    if isinstance(v, torch.Tensor):
        return {"tensor": [list(v.shape), str(v.dtype)[6:]]}
    if isinstance(v, torch.nn.Module):
        red = v.__reduce_ex__(2)
        state = red[2]
        mod = type(v).__module__
        mod = "__main__" if mod in ("models", "fixture_classes") else mod
        return {"module": f"{mod}.{type(v).__qualname__}", "state": enc(state)}
    if isinstance(v, tuple):
        return {"tuple": [enc(x) for x in v]}
    if isinstance(v, list):
        return {"list": [enc(x) for x in v]}
    if isinstance(v, collections.OrderedDict):
        out = {"odict": [[enc(k), enc(x)] for k, x in v.items()]}
        md = getattr(v, "_metadata", None)
        if md is not None:
            out["metadata"] = enc(md)
        return out
    if isinstance(v, dict):
        return {"dict": [[enc(k), enc(x)] for k, x in v.items()]}
    if isinstance(v, (set, frozenset)):
        return {"set": sorted(enc(x)["str"] for x in v)}
    if isinstance(v, torch.device):
        return {"device": str(v)}
    raise TypeError(f"cannot encode {type(v)}")
