"""Training the head/body detector on generated scenes: random crops, CPU, one thread, seeded.

Each step draws ``batch_size`` crops (mostly centred on a person, with scale jitter, mirror and exposure/gamma
jitter) from the training frames, encodes CenterNet targets and takes an AdamW step under a warm-up + cosine
schedule. Optionally the last ``fp16_fraction`` of the steps run FP16-aware (weights and activations rounded to
float16 in the forward pass, straight-through; ``edgedeploy.compress.quantize.fp16_training``), so what the
MyriadX computes in FP16 is what was trained. ``ema`` > 0 keeps an exponential moving average of the weights and
returns it instead of the last step's weights (it does not change the optimisation itself).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from .data import DetectionSet, ImageLabels
from .model import STRIDE
from .targets import detection_loss, encode


@dataclass(frozen=True)
class TrainConfig:
    """Steps, batch of crops (crop H x W, multiples of 32), AdamW lr / weight decay, scale jitter, FP16-aware
    fraction of the final steps (0 = off), torch threads, seed, weight-averaging decay (0 = off)."""

    steps: int = 400
    batch_size: int = 16
    crop: tuple[int, int] = (192, 256)
    lr: float = 6e-3
    weight_decay: float = 1e-4
    warmup: int = 20
    scale: tuple[float, float] = (0.6, 1.3)
    person_centred: float = 0.8            # fraction of crops centred on a labelled person
    fp16_fraction: float = 0.0
    threads: int = 1
    seed: int = 0
    ema: float = 0.0                       # decay of an exponential moving average of the weights (0 = off)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"steps and batch_size must be ints >= 1 (got {self.steps!r}, {self.batch_size!r})")
        ch, cw = self.crop
        if ch < 32 or cw < 32 or ch % 32 or cw % 32:
            raise ConfigError(f"crop {self.crop} must be multiples of 32 (the detector's largest stride)")
        if not self.lr > 0 or self.weight_decay < 0 or self.warmup < 0:
            raise ConfigError(f"need lr > 0, weight_decay >= 0, warmup >= 0 (got {self.lr}, {self.weight_decay}, "
                              f"{self.warmup})")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(f"scale range {self.scale} must satisfy 0 < low <= high")
        if not 0 <= self.fp16_fraction <= 1 or not 0 <= self.person_centred <= 1:
            raise ConfigError("fp16_fraction and person_centred must be in [0, 1] "
                              f"(got {self.fp16_fraction}, {self.person_centred})")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1) (0 = off; e.g. 0.999), got {self.ema}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads must be an int >= 1 (got {self.threads!r})")


@dataclass
class TrainResult:
    """The trained model, the mean loss (and its parts) over each tenth of the run, wall time and config; ``meta``
    holds the CPU time (``cpu_seconds``: the wall time on an idle core, as training uses one thread)."""

    model: nn.Module
    history: list[dict[str, float]]
    seconds: float
    config: TrainConfig
    fp16_steps: int = 0
    losses: list[float] = field(default_factory=list)      # every step's total loss
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def first_loss(self) -> float:
        """Mean loss over the first tenth of the steps."""
        return self.history[0]["loss"]

    @property
    def final_loss(self) -> float:
        """Mean loss over the last tenth of the steps."""
        return self.history[-1]["loss"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the model itself is left out)."""
        return {"history": self.history, "seconds": round(self.seconds, 2), "config": asdict(self.config),
                "fp16_steps": self.fp16_steps, "initial_loss": self.losses[0] if self.losses else None,
                "first_loss": self.first_loss, "final_loss": self.final_loss, **self.meta}

    def __str__(self) -> str:
        from .data import render_text

        return render_text(self)

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"head/body training: {self.config.steps} steps in {self.seconds:.1f} s")
        for col in ("steps", "loss", "heat", "box"):
            t.add_column(col, justify="right")
        for row in self.history:
            t.add_row(str(int(row["step"])), *(f"{row[k]:.3f}" for k in ("loss", "heat", "box")))
        return t


def sample_crop(data: DetectionSet, rng: np.random.Generator, cfg: TrainConfig) -> tuple[np.ndarray, ImageLabels]:
    """One augmented training crop (uint8 crop H x W) and its labels in crop pixels."""
    import cv2

    i = int(rng.integers(len(data)))
    img, lb = data.images[i], data.labels[i]
    ch, cw = cfg.crop
    s = math.exp(rng.uniform(math.log(cfg.scale[0]), math.log(cfg.scale[1])))
    real = np.nonzero(~lb.crowd)[0]
    if len(real) and rng.random() < cfg.person_centred:
        x, y, w, h = lb.boxes[int(rng.choice(real))]
        cx, cy = x + w / 2 + rng.normal(0, cw / (4 * s)), y + h / 2 + rng.normal(0, ch / (4 * s))
    else:
        cx, cy = rng.uniform(0, img.shape[1]), rng.uniform(0, img.shape[0])
    flip = rng.random() < 0.5
    # source (u, v) -> crop (s*(u - cx) + cw/2, s*(v - cy) + ch/2), mirrored when flip
    sx = -s if flip else s
    m = np.array([[sx, 0, cw / 2 - sx * cx], [0, s, ch / 2 - s * cy]], np.float32)
    fill = float(img.mean())
    crop = cv2.warpAffine(img, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    gain, gamma = rng.uniform(0.7, 1.3), math.exp(rng.uniform(-0.25, 0.25))
    crop = np.clip(255.0 * (np.clip(crop / 255.0 * gain, 0, 1) ** gamma), 0, 255).astype(np.uint8)
    b = lb.boxes.astype(np.float32)
    x0 = m[0, 0] * b[:, 0] + m[0, 2]
    x1 = m[0, 0] * (b[:, 0] + b[:, 2]) + m[0, 2]
    if flip:
        x0, x1 = x1, x0
    y0, y1 = s * b[:, 1] + m[1, 2], s * (b[:, 1] + b[:, 3]) + m[1, 2]
    area = (x1 - x0) * (y1 - y0)
    cx0, cy0, cx1, cy1 = np.clip(x0, 0, cw), np.clip(y0, 0, ch), np.clip(x1, 0, cw), np.clip(y1, 0, ch)
    kept = (cx1 - cx0) * (cy1 - cy0) / np.maximum(area, 1e-6)
    sel = kept >= 0.1
    crowd = lb.crowd | (kept < 0.5)
    boxes = np.stack([cx0, cy0, cx1 - cx0, cy1 - cy0], axis=1)[sel]
    return crop, ImageLabels(boxes.astype(np.float32), lb.labels[sel], lb.distances[sel], crowd[sel])


def _batch(data: DetectionSet, rng: np.random.Generator, cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    crops, labels = zip(*(sample_crop(data, rng, cfg) for _ in range(cfg.batch_size)))
    x = torch.from_numpy(np.stack(crops)[:, None].astype(np.float32) / 255.0)
    return x, encode(list(labels), (cfg.crop[0] // STRIDE, cfg.crop[1] // STRIDE))


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))


class _WeightAverage:
    """Exponential moving average of a model's floating-point parameters and buffers (Polyak averaging), with the
    usual warm-up ``min(decay, (1 + n) / (10 + n))`` so the first steps' random weights fade out quickly."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict({**model.state_dict(), **self.shadow})


def _freeze_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def train_detector(model: nn.Module, train_data: DetectionSet, config: TrainConfig | None = None,
                   progress: bool = True) -> TrainResult:
    """Train ``model`` in place on crops of ``train_data``; returns the loss history (deterministic for a seed)."""
    import contextlib

    cfg = config or TrainConfig()
    if len(train_data) == 0 or sum(int((~lb.crowd).sum()) for lb in train_data.labels) == 0:
        raise ConfigError("train_data has no labelled objects; generate scenes or load a COCO file with boxes")
    small = [img.shape for img in train_data.images if img.shape[0] < 32 or img.shape[1] < 32]
    if small:
        raise ConfigError(f"training frames must be at least 32x32 (got {small[0]})")
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    fp16_from = cfg.steps - round(cfg.steps * cfg.fp16_fraction)
    rows: list[dict[str, float]] = []
    losses: list[float] = []
    chunk = max(cfg.steps // 10, 1)
    acc: dict[str, float] = {}
    t0, cpu0 = time.perf_counter(), time.process_time()
    fp16_ctx: Any = contextlib.nullcontext()
    bar = _progress(progress, cfg.steps)
    average = _WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
    try:
        model.train()
        with bar as prog:
            task = prog.add_task("train", total=cfg.steps, loss=float("nan")) if prog else None
            for step in range(cfg.steps):
                if step == fp16_from and cfg.fp16_fraction > 0:
                    from ...compress.quantize.fp16_training import fp16_rounding

                    fp16_ctx = fp16_rounding(model)
                    fp16_ctx.__enter__()
                    _freeze_bn(model)
                for g in opt.param_groups:
                    g["lr"] = _lr(step, cfg)
                x, t = _batch(train_data, rng, cfg)
                loss, parts = detection_loss(model(x), t)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                if average is not None:
                    average.update(model)
                losses.append(parts["loss"])
                for k, v in parts.items():
                    acc[k] = acc.get(k, 0.0) + v
                if (step + 1) % chunk == 0 or step + 1 == cfg.steps:
                    n = (step % chunk) + 1
                    rows.append({"step": step + 1, **{k: v / n for k, v in acc.items()}})
                    acc = {}
                if prog:
                    prog.update(task, advance=1, loss=parts["loss"])
    finally:
        if cfg.fp16_fraction > 0 and not isinstance(fp16_ctx, contextlib.nullcontext):
            fp16_ctx.__exit__(None, None, None)
        torch.set_num_threads(prev_threads)
        model.eval()
    if average is not None:
        average.copy_to(model)                 # the averaged weights are the result
    return TrainResult(model, rows, time.perf_counter() - t0, cfg, fp16_steps=cfg.steps - fp16_from, losses=losses,
                       meta={"cpu_seconds": round(time.process_time() - cpu0, 2)})


def _progress(enabled: bool, total: int) -> Any:
    import contextlib

    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]head/body[/] training"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), transient=True)
