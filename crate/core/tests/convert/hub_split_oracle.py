"""Writes hub_split_cases.json: huggingface_hub's own shard splitting for small cases.

huggingface_hub is not in the project's torch venv, so the output is committed; regenerate
with a scratch venv: `python -m venv /tmp/hf && /tmp/hf/bin/pip install huggingface_hub==2.4.0
&& /tmp/hf/bin/python hub_split_oracle.py > hub_split_cases.json`.

Each case: items [name, size, storage id or null] in state-dict order and max_shard_size;
the answer is huggingface_hub's filename_to_tensors (shards in order) and total_size.
"""

import json

import huggingface_hub
from huggingface_hub.serialization import split_state_dict_into_shards_factory

CASES = [
    ([["layer_1", 6, None], ["layer_2", 10, None], ["layer_3", 30, None], ["layer_4", 2, None], ["layer_5", 2, None]], 10),
    ([["a", 6, None], ["b", 6, None], ["c", 2, None], ["d", 6, None], ["e", 2, None], ["f", 2, None]], 10),
    ([["a", 3, None], ["big", 50, None], ["b", 3, None], ["c", 5, None]], 10),
    ([["a", 4, 1], ["b", 4, 2], ["tied", 4, 1], ["c", 4, 3], ["d", 4, 2]], 8),
    ([["x", 1, None]], 1),
    ([["x", 5, None], ["y", 5, None]], 100),
    ([["a", 10, None], ["b", 10, None], ["c", 10, None]], 10),
    ([["a", 0, None], ["b", 11, None], ["c", 0, None], ["d", 9, 7], ["e", 1, 7], ["f", 2, None]], 10),
]


def main():
    out = []
    for items, max_size in CASES:
        sd = {name: (name, size, sid) for name, size, sid in items}
        split = split_state_dict_into_shards_factory(
            sd,
            get_storage_size=lambda t: t[1],
            get_storage_id=lambda t: t[2],
            filename_pattern="model{suffix}.safetensors",
            max_shard_size=max_size,
        )
        out.append({
            "items": items,
            "max_shard_size": max_size,
            "shards": [[f, names] for f, names in split.filename_to_tensors.items()],
            "total_size": split.metadata["total_size"],
        })
    print(json.dumps({"huggingface_hub": huggingface_hub.__version__, "cases": out}, indent=1))


if __name__ == "__main__":
    main()
