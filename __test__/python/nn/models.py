"""Models shared by the nn interop scripts; __test__/nn-models.ts builds the same ones in TS."""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


# The seed's model is defined once, beside the fixtures that pickle it whole.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fixture_classes import TheModelClass  # noqa: E402,F401


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.bn1 = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 4)
        self.register_buffer("scale", torch.ones(4))
        self.register_buffer("cache", torch.zeros(2), persistent=False)

    def forward(self, x):
        x = self.flat(self.features(x))
        x = self.head(self.drop(self.bn1(x)))
        return x * self.scale


class LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 6, padding_idx=0)
        self.lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(10, 4)
        self.norm = nn.LayerNorm(4)
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        h, _ = self.gru(h)
        return self.out(self.norm(h))[:, -1]


def zoo():
    """One of every built-in layer, with non-default arguments where they change the pickle."""
    return nn.ModuleDict(
        {
            "linear": nn.Linear(3, 4),
            "linear_nobias": nn.Linear(3, 4, bias=False),
            "bilinear": nn.Bilinear(2, 3, 4),
            "conv1d": nn.Conv1d(3, 6, 5, stride=2, padding=1),
            "conv2d": nn.Conv2d(3, 6, (3, 5), padding="same", dilation=2),
            "conv2d_valid": nn.Conv2d(2, 4, 3, padding="valid", groups=2, bias=False),
            "conv3d": nn.Conv3d(2, 4, 3),
            "convt2d": nn.ConvTranspose2d(3, 6, 5, stride=2, output_padding=1),
            "maxpool": nn.MaxPool2d(2, 2),
            "maxpool3": nn.MaxPool2d(3),
            "avgpool": nn.AvgPool2d(2),
            "adaptive": nn.AdaptiveAvgPool2d((5, 7)),
            "adaptive1": nn.AdaptiveAvgPool2d(1),
            "bn1d": nn.BatchNorm1d(4),
            "bn2d": nn.BatchNorm2d(4, momentum=None, affine=False),
            "bn_nostats": nn.BatchNorm2d(3, track_running_stats=False),
            "ln": nn.LayerNorm([4, 5], eps=1e-6),
            "ln_noaffine": nn.LayerNorm(4, elementwise_affine=False),
            "gn": nn.GroupNorm(2, 4),
            "emb": nn.Embedding(10, 3),
            "emb_pad": nn.Embedding(10, 3, padding_idx=-1, max_norm=1.0),
            "dropout": nn.Dropout(),
            "dropout1": nn.Dropout(1.0),
            "relu": nn.ReLU(),
            "gelu": nn.GELU(approximate="tanh"),
            "sigmoid": nn.Sigmoid(),
            "tanh": nn.Tanh(),
            "softmax": nn.Softmax(dim=1),
            "flatten": nn.Flatten(),
            "identity": nn.Identity(),
            "seq": nn.Sequential(nn.Linear(2, 2), nn.ReLU()),
            "mlist": nn.ModuleList([nn.Linear(2, 3), nn.Tanh()]),
            "lstm": nn.LSTM(3, 4),
            "lstm_proj": nn.LSTM(3, 6, proj_size=2, bias=False),
            "gru": nn.GRU(3, 4, num_layers=2, bidirectional=True, dropout=0.25),
        }
    )


def build(name):
    if name == "seed":
        return TheModelClass()
    if name == "bn":
        return BNNet()
    if name == "lstm":
        return LSTMNet()
    if name == "zoo":
        return zoo()
    if name == "dp":
        return nn.DataParallel(TheModelClass())
    if name == "dp2":
        return nn.DataParallel(nn.DataParallel(BNNet()))
    raise KeyError(name)


MODEL_NAMES = ["seed", "bn", "lstm", "zoo", "dp", "dp2"]
