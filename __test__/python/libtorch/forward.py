"""Oracle for __test__/libtorch-forward.test.ts: every layer's forward, the seed model's
forward and gradients, losses and nn.functional, computed by real PyTorch.

usage: forward.py OUT.pt

Writes one weights-only-loadable dict {case: {...}}. A module case is
  {"kind": "module", "train": bool, "sd": state_dict before, "calls": [[inputs...], ...],
   "outs": [[outputs...], ...], "after": state_dict after the calls}
(outputs flattened: an RNN's (out, (h, c)) is [out, h, c]; an LSTM's (h0, c0) argument is a list). A functional case is
  {"kind": "functional", "inputs": [...], "outs": [...]}. The test builds each module with the
same constructor arguments (its table in the test file), loads "sd" and replays "calls".
"""
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

# One intra-op thread, like the Node side: the test machines are small and shared, where
# spinning OpenMP workers cost far more than they give (and both sides then reduce alike).
torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fixture_classes import TheModelClass  # noqa: E402

torch.manual_seed(0)


def r(*shape):
    return torch.randn(*shape)


def flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    res = []
    for o in out:
        res.extend(flat(o))
    return res


def randomize(m):
    """Non-trivial values for every parameter and buffer (BN stats, LN affine...)."""
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape) * 0.3)
            elif name.endswith("weight") and t.dim() == 1:
                t.copy_(torch.rand(t.shape) + 0.5)
    return m


# name -> (module, train, calls); calls is a list of argument lists
MODULES = {
    "linear": (nn.Linear(3, 4), False, [[r(2, 3)]]),
    "linear_nobias_3d": (nn.Linear(3, 4, bias=False), False, [[r(5, 2, 3)]]),
    "bilinear": (nn.Bilinear(2, 3, 4), False, [[r(5, 2), r(5, 3)]]),
    "conv1d": (nn.Conv1d(3, 6, 5, stride=2, padding=1), False, [[r(2, 3, 16)]]),
    "conv1d_same_even": (nn.Conv1d(3, 4, 4, padding="same"), False, [[r(2, 3, 10)]]),
    "conv2d_same_dil": (nn.Conv2d(3, 6, (3, 5), padding="same", dilation=2), False, [[r(2, 3, 12, 13)]]),
    "conv2d_valid_groups": (nn.Conv2d(2, 4, 3, padding="valid", groups=2, bias=False), False, [[r(2, 2, 7, 8)]]),
    "conv2d_stride_pad": (nn.Conv2d(4, 6, 3, stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2), False, [[r(1, 4, 9, 10)]]),
    "conv2d_unbatched": (nn.Conv2d(3, 2, 3), False, [[r(3, 8, 8)]]),
    "conv3d": (nn.Conv3d(2, 4, 3), False, [[r(1, 2, 5, 6, 7)]]),
    "conv3d_stride": (nn.Conv3d(2, 4, (2, 3, 3), stride=2, padding=1), False, [[r(2, 2, 6, 6, 6)]]),
    "conv2d_reflect": (nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), False, [[r(2, 3, 6, 5)]]),
    "conv2d_replicate": (nn.Conv2d(3, 4, 3, padding=(2, 1), padding_mode="replicate"), False, [[r(1, 3, 6, 5)]]),
    "conv1d_circular": (nn.Conv1d(2, 3, 3, padding=2, padding_mode="circular"), False, [[r(2, 2, 7)]]),
    "convt2d": (nn.ConvTranspose2d(3, 6, 5, stride=2, output_padding=1), False, [[r(2, 3, 5, 4)]]),
    "convt2d_groups": (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dilation=2), False, [[r(1, 4, 5, 5)]]),
    "maxpool": (nn.MaxPool2d(2, 2), False, [[r(2, 3, 9, 9)]]),
    "maxpool_ceil": (nn.MaxPool2d(3, stride=2, ceil_mode=True), False, [[r(1, 2, 10, 11)]]),
    "maxpool_pad_dil": (nn.MaxPool2d(3, stride=1, padding=1, dilation=2), False, [[r(1, 2, 8, 8)]]),
    "avgpool": (nn.AvgPool2d(2), False, [[r(2, 3, 9, 9)]]),
    "avgpool_pad_ceil": (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), False, [[r(1, 2, 10, 11)]]),
    "avgpool_divisor": (nn.AvgPool2d(2, divisor_override=3), False, [[r(1, 2, 6, 6)]]),
    "adaptive": (nn.AdaptiveAvgPool2d((5, 7)), False, [[r(2, 3, 11, 13)]]),
    "adaptive1": (nn.AdaptiveAvgPool2d(1), False, [[r(2, 3, 6, 5)]]),
    "bn1d_train": (nn.BatchNorm1d(4), True, [[r(8, 4)], [r(8, 4) * 2 + 1]]),
    "bn1d_3d_train": (nn.BatchNorm1d(4, momentum=0.3), True, [[r(6, 4, 5)]]),
    "bn2d_cma_train": (nn.BatchNorm2d(4, momentum=None, affine=False), True, [[r(3, 4, 5, 5)], [r(3, 4, 5, 5) + 1], [r(3, 4, 5, 5) * 3]]),
    "bn2d_eval": (randomize(nn.BatchNorm2d(4)), False, [[r(3, 4, 5, 5)]]),
    "bn1d_eval": (randomize(nn.BatchNorm1d(4, eps=1e-3)), False, [[r(5, 4)]]),
    "bn_nostats_eval": (nn.BatchNorm2d(3, track_running_stats=False), False, [[r(2, 3, 4, 4)]]),
    "ln": (randomize(nn.LayerNorm([4, 5], eps=1e-6)), False, [[r(2, 3, 4, 5)]]),
    "ln_noaffine": (nn.LayerNorm(4, elementwise_affine=False), False, [[r(3, 4)]]),
    "gn": (randomize(nn.GroupNorm(2, 4)), False, [[r(3, 4, 5, 5)]]),
    "emb": (nn.Embedding(10, 3), False, [[torch.randint(0, 10, (2, 5))]]),
    "emb_pad": (nn.Embedding(10, 3, padding_idx=2), False, [[torch.tensor([[2, 0, 9], [2, 2, 1]])]]),
    "dropout_eval": (nn.Dropout(0.5), False, [[r(4, 5)]]),
    "dropout1_eval": (nn.Dropout(1.0), False, [[r(4, 5)]]),
    "relu": (nn.ReLU(), False, [[r(4, 5)]]),
    "gelu": (nn.GELU(), False, [[r(4, 5)]]),
    "gelu_tanh": (nn.GELU(approximate="tanh"), False, [[r(4, 5)]]),
    "sigmoid": (nn.Sigmoid(), False, [[r(4, 5)]]),
    "tanh": (nn.Tanh(), False, [[r(4, 5)]]),
    "softmax": (nn.Softmax(dim=1), False, [[r(3, 4, 5)]]),
    "softmax_last": (nn.Softmax(dim=-1), False, [[r(3, 4, 5)]]),
    "flatten": (nn.Flatten(), False, [[r(2, 3, 4, 5)]]),
    "flatten_1_2": (nn.Flatten(1, 2), False, [[r(2, 3, 4, 5)]]),
    "identity": (nn.Identity(), False, [[r(2, 3)]]),
    "seq_eval": (nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2)), False, [[r(5, 4)]]),
    "lstm": (nn.LSTM(3, 4), False, [[r(5, 2, 3)]]),
    "lstm_2layer_bi_bf_h0": (nn.LSTM(3, 5, num_layers=2, bidirectional=True, batch_first=True), False, [[r(2, 6, 3), (r(4, 2, 5), r(4, 2, 5))]]),
    "lstm_proj": (nn.LSTM(3, 6, proj_size=2, bias=False), False, [[r(4, 2, 3)]]),
    "lstm_proj_2layer_bi": (nn.LSTM(3, 6, proj_size=2, num_layers=2, bidirectional=True), False, [[r(4, 2, 3)]]),
    "lstm_unbatched": (nn.LSTM(3, 4, num_layers=2), False, [[r(5, 3)]]),
    "lstm_unbatched_bf_h0": (nn.LSTM(3, 4, batch_first=True), False, [[r(5, 3), (r(1, 4), r(1, 4))]]),
    "gru_2layer_bi": (nn.GRU(3, 4, num_layers=2, bidirectional=True, dropout=0.25), False, [[r(5, 2, 3)]]),
    "gru_bf_h0": (nn.GRU(3, 4, batch_first=True), False, [[r(2, 5, 3), r(1, 2, 4)]]),
    "gru_unbatched_h0": (nn.GRU(3, 4), False, [[r(5, 3), r(1, 4)]]),
    "seed_model": (TheModelClass(), False, [[r(4, 3, 32, 32)]]),
    "ce_loss": (nn.CrossEntropyLoss(), False, [[r(6, 5), torch.randint(0, 5, (6,))]]),
    "ce_loss_weighted_smooth": (
        nn.CrossEntropyLoss(weight=torch.rand(5) + 0.5, label_smoothing=0.1, ignore_index=1),
        False,
        [[r(6, 5), torch.tensor([0, 1, 2, 3, 4, 1])]],
    ),
    "ce_loss_none_4d": (nn.CrossEntropyLoss(reduction="none"), False, [[r(2, 5, 3, 3), torch.randint(0, 5, (2, 3, 3))]]),
    "ce_loss_sum": (nn.CrossEntropyLoss(reduction="sum"), False, [[r(6, 5), torch.randint(0, 5, (6,))]]),
    "nll_loss": (nn.NLLLoss(), False, [[F.log_softmax(r(6, 5), dim=1), torch.randint(0, 5, (6,))]]),
    "nll_loss_weighted_sum": (nn.NLLLoss(weight=torch.rand(5), reduction="sum"), False, [[F.log_softmax(r(6, 5), dim=1), torch.randint(0, 5, (6,))]]),
    "mse_loss": (nn.MSELoss(), False, [[r(4, 3), r(4, 3)]]),
    "mse_loss_none": (nn.MSELoss(reduction="none"), False, [[r(4, 3), r(4, 3)]]),
}


def seed_forward_functional(x, w1, b1, w2, b2, fw1, fb1, fw2, fb2, fw3, fb3):
    """The seed's forward written with nn.functional only (the ops the seed uses)."""
    x = F.max_pool2d(F.relu(F.conv2d(x, w1, b1)), 2, 2)
    x = F.max_pool2d(F.relu(F.conv2d(x, w2, b2)), 2, 2)
    x = x.view(-1, 16 * 5 * 5)
    x = F.relu(F.linear(x, fw1, fb1))
    x = F.relu(F.linear(x, fw2, fb2))
    return F.linear(x, fw3, fb3)


def cases():
    out = {}
    for name, (m, train, calls) in MODULES.items():
        m.train(train)
        sd = OrderedDict((k, v.clone()) for k, v in m.state_dict().items())
        outs = []
        with torch.no_grad():
            for args in calls:
                outs.append([o.clone() for o in flat(m(*args))])
        out[name] = {
            "kind": "module",
            "train": train,
            "sd": sd,
            "calls": [[list(v) if isinstance(v, tuple) else v for v in a] for a in calls],
            "outs": outs,
            "after": OrderedDict((k, v.clone()) for k, v in m.state_dict().items()),
        }

    # nn.functional, one case per op the seed uses (plus softmax/log_softmax/cross_entropy)
    x = r(2, 3, 32, 32)
    seed = TheModelClass()
    ws = [p.detach().clone() for p in seed.parameters()]
    logits, target = r(4, 10), torch.randint(0, 10, (4,))
    fx = r(3, 7)
    func = {
        "F.seed_forward": ([x, *ws], [seed_forward_functional(x, *ws)]),
        "F.conv2d": ([x, ws[0], ws[1]], [F.conv2d(x, ws[0], ws[1], stride=2, padding=1)]),
        "F.max_pool2d": ([x], [F.max_pool2d(x, 3, stride=2, padding=1)]),
        "F.relu": ([fx], [F.relu(fx)]),
        "F.linear": ([fx, ws[8][:, :7].contiguous(), ws[9]], [F.linear(fx, ws[8][:, :7], ws[9])]),
        "view_flatten": ([x], [x.view(2, -1), torch.flatten(x, 1), x.flatten()]),
        "F.softmax": ([fx], [F.softmax(fx, dim=1), F.softmax(fx, dim=0), F.log_softmax(fx, dim=1)]),
        "F.cross_entropy": ([logits, target], [F.cross_entropy(logits, target), F.cross_entropy(logits, target, reduction="none", label_smoothing=0.2)]),
    }
    for name, (inputs, outs) in func.items():
        out[name] = {"kind": "functional", "inputs": inputs, "outs": outs}
    return out


def autograd_cases():
    """Gradients after cross_entropy(...).backward() for the seed model, and an
    Embedding(padding_idx)+LSTM+Linear net (padding row gets no gradient)."""
    res = {}
    model = TheModelClass()
    x, y = r(4, 3, 32, 32), torch.randint(0, 10, (4,))
    sd = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    res["seed"] = {
        "sd": sd,
        "x": x,
        "y": y,
        "loss": loss.detach(),
        "grads": OrderedDict((k, p.grad.clone()) for k, p in model.named_parameters()),
    }
    emb = nn.Embedding(12, 4, padding_idx=0)
    lstm = nn.LSTM(4, 5, batch_first=True, bidirectional=True)
    head = nn.Linear(10, 3)
    net = nn.ModuleDict({"emb": emb, "lstm": lstm, "head": head})
    sd = OrderedDict((k, v.clone()) for k, v in net.state_dict().items())
    tokens = torch.tensor([[0, 3, 5, 0], [7, 0, 11, 2]])
    y = torch.tensor([1, 2])
    h, _ = lstm(emb(tokens))
    loss = F.cross_entropy(head(h[:, -1]), y)
    loss.backward()
    res["rnn"] = {
        "sd": sd,
        "x": tokens,
        "y": y,
        "loss": loss.detach(),
        "grads": OrderedDict((k, p.grad.clone()) for k, p in net.named_parameters()),
    }
    return res


def dropout_case():
    """Dropout in training mode draws libtorch's CPU generator: after the same
    manual_seed both sides draw the same mask."""
    x = torch.ones(6, 7) + torch.arange(42.0).view(6, 7)
    torch.manual_seed(1234)
    a = F.dropout(x, 0.4, training=True)
    b = nn.Dropout(0.5).train()(x)
    return {"x": x, "seed": 1234, "outs": [a, b]}


if __name__ == "__main__":
    data = {"modules": cases(), "autograd": autograd_cases(), "dropout": dropout_case()}
    torch.save(data, sys.argv[1])
    # make sure the file is what the test will read
    torch.load(sys.argv[1], weights_only=True)
    print("ok")
