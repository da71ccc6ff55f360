"""Prints enc(optimizer.state_dict()) for the configurations mirrored in __test__/optim.test.ts."""
import json
import sys

import torch
import torch.optim as optim

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import models  # noqa: E402
from encode import enc  # noqa: E402

torch.manual_seed(0)
m = models.TheModelClass()
conv = list(m.conv1.parameters()) + list(m.conv2.parameters())
fc = list(m.fc1.parameters()) + list(m.fc2.parameters()) + list(m.fc3.parameters())
configs = {
    "seed_sgd": lambda: optim.SGD(m.parameters(), lr=0.001, momentum=0.9),
    "sgd_default": lambda: optim.SGD(m.parameters()),
    "sgd_groups": lambda: optim.SGD([{"params": conv}, {"params": fc, "lr": 0.1}], lr=0.01, momentum=0.5, nesterov=True),
    "sgd_named": lambda: optim.SGD(m.named_parameters(), lr=0.1),
    "adam": lambda: optim.Adam(m.parameters()),
    "adamw": lambda: optim.AdamW(m.parameters(), lr=1e-4, betas=(0.8, 0.9)),
    "adam_groups": lambda: optim.Adam([{"params": fc, "weight_decay": 0.5, "amsgrad": True}, {"params": conv}], lr=2e-3),
    "rmsprop": lambda: optim.RMSprop(m.parameters(), momentum=0.1, centered=True),
    "adagrad": lambda: optim.Adagrad(m.parameters(), initial_accumulator_value=0.1),
}
print(json.dumps({k: enc(f().state_dict()) for k, f in configs.items()}))
