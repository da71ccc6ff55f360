"""nn.Module classes that fixtures pickle whole (`torch.save(model)`).

They must be found as `__main__.<Name>` by whoever unpickles them, exactly like the seed's
`TheModelClass` defined in a training script. `install_in_main()` re-homes them into the
running script's `__main__` so that make_fixtures.py (writing) and oracle.py (reading) agree.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class TheModelClass(nn.Module):
    """The seed's model (pytorch-save-load-notes.md), layer for layer."""

    def __init__(self):
        super(TheModelClass, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x


class BNModel(nn.Module):
    """BatchNorm2d (running stats, num_batches_tracked) and Dropout."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.drop(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 12, num_layers=2, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        out, _ = self.lstm(self.embed(x))
        return self.head(out[:, -1])


CLASSES = (TheModelClass, BNModel, LSTMModel)


def install_in_main():
    """Make every fixture class pickle and unpickle as `__main__.<Name>`."""
    main = sys.modules["__main__"]
    for cls in CLASSES:
        cls.__module__ = "__main__"
        setattr(main, cls.__name__, cls)
