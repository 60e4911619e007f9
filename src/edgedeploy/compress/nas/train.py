"""What a candidate is worth: its accuracy after a short training on real data, or a zero-cost proxy.

Data comes through the shared adapter (``edgedeploy.data``): a spec string (``digits`` by default, an image
folder, a ``.npy``) is resolved at each candidate's input resolution; arrays, ``(x, y)`` pairs, batches or a
DataLoader are resized (bilinear) to it. Without ``eval_data`` a seeded quarter of the training data is held out.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import CalibrationError, ConfigError
from ..early_exit.data import as_xy

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]     # x_train, y_train, x_val, y_val


@dataclass
class TaskData:
    """Training and validation data of the search, served at any input resolution (cached per resolution)."""

    train_data: Any = "digits"
    eval_data: Any = None
    channels: int = 1
    num_classes: int = 10
    limit: int | None = None                     # training samples kept at most (seeded subset)
    seed: int = 0
    _cache: dict[int, Split] = field(default_factory=dict, repr=False)

    def at(self, resolution: int) -> Split:
        """(x_train, y_train, x_val, y_val) at ``resolution`` x ``resolution``."""
        if resolution not in self._cache:
            self._cache[resolution] = self._load(resolution)
        return self._cache[resolution]

    def _load(self, r: int) -> Split:
        from ...data import resolve

        shape = (1, self.channels, r, r)
        train = resolve(self.train_data, shape, "train")
        if self.eval_data is not None:
            xt, yt = as_xy(train, "train")
            xv, yv = as_xy(resolve(self.eval_data, shape, "evaluation"), "evaluation")
        elif hasattr(train, "train") and hasattr(train, "test"):
            (xt, yt), (xv, yv) = as_xy(train, "train"), as_xy(train, "evaluation")
        else:
            x, y = as_xy(train, "train")
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
            n_val = max(1, len(x) // 4)
            if len(x) - n_val < 1:
                raise CalibrationError(f"training data has {len(x)} sample(s): too few to hold out validation data; "
                                       "pass eval_data= or more samples")
            xt, yt, xv, yv = x[perm[n_val:]], y[perm[n_val:]], x[perm[:n_val]], y[perm[:n_val]]
        if self.limit is not None and len(xt) > self.limit:
            keep = torch.randperm(len(xt), generator=torch.Generator().manual_seed(self.seed))[: self.limit]
            xt, yt = xt[keep], yt[keep]
        xt, xv = _fit(xt, shape, "training"), _fit(xv, shape, "evaluation")
        top = int(max(yt.max(), yv.max()))
        if top >= self.num_classes or int(min(yt.min(), yv.min())) < 0:
            raise ConfigError(f"the data has labels 0..{top} but the search space has num_classes="
                              f"{self.num_classes}; set num_classes in the space to at least {top + 1}")
        return xt, yt, xv, yv


def _fit(x: torch.Tensor, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Images (N, C, H, W) resized to the candidate's input; a channel-count mismatch is an error."""
    if x.ndim != 4 or x.shape[1] != shape[1]:
        raise CalibrationError(f"{what} data has shape {tuple(x.shape)} but the search space takes "
                               f"N x {shape[1]} x H x W images; set in_channels or reshape the data")
    if tuple(x.shape[2:]) != tuple(shape[2:]):
        x = F.interpolate(x, size=tuple(shape[2:]), mode="bilinear", align_corners=False)
    return x.contiguous()


def train(model: nn.Module, data: Split, epochs: int, lr: float = 3e-3, batch_size: int = 64, seed: int = 0,
          on_epoch: Callable[[int, float], None] | None = None) -> list[dict[str, float]]:
    """Adam + cross-entropy with a one-cycle learning rate (peak ``lr``: short budgets converge best with a
    warm-up and an annealed end) for ``epochs`` on the training split, seeded; ``on_epoch(epoch, val_top1)`` after
    each epoch (where Optuna's pruner may stop the trial). Returns per-epoch loss and validation top-1."""
    xt, yt, xv, yv = data
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(xt) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.25)
    history = []
    for epoch in range(epochs):
        model.train()
        idx = torch.randperm(len(xt), generator=torch.Generator().manual_seed(seed + epoch))
        total = 0.0
        for i in range(0, len(xt), batch_size):
            b = idx[i:i + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(xt[b]), yt[b])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        acc = top1(model, xv, yv)
        history.append({"epoch": float(epoch + 1), "loss": total / len(xt), "val_top1": acc})
        if on_epoch is not None:
            on_epoch(epoch, acc)
    model.eval()
    return history


@torch.no_grad()
def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    """Top-1 accuracy in percent (eval mode)."""
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return 100.0 * correct / len(x)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` for the block (tiny candidates train fastest on one thread, and
    workers sharing a machine must not oversubscribe its cores)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


_ACTS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.LeakyReLU)


@torch.no_grad()
def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """Zero-cost proxy of Mellor et al. 2021 ("NAS without training"): log |K| of the Hamming kernel of the
    untrained network's activation patterns on a batch (distinct codes per input = more expressive network)."""
    codes: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
        codes.append((out.detach().flatten(1) > 0).float())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _ACTS)]
    if not handles:
        raise ConfigError("the naswot proxy needs activation modules (ReLU, Hardswish, ...) in the model")
    was_training = model.training
    model.train()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    c = torch.cat(codes, dim=1).double()
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else float("-inf")
