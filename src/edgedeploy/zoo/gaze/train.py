"""Short, seeded training of the gaze corrector on synthetic pairs, and the cached ``pretrained`` weights."""
from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._io import write_bytes_atomic
from ...errors import ArtifactError, ConfigError
from .eyes import EyeConfig, GazePairs, make_pairs
from .model import EyeWarpNet, GazeCorrector, GazeNetConfig, apply_field


@dataclass(frozen=True)
class GazeTrainConfig:
    """Training recipe: ``pairs`` generated eye pairs (both eyes are used, right ones mirrored), Adam with a
    cosine schedule for ``steps`` steps, L1 to the true target plus ``smooth_weight`` x flow total variation."""

    pairs: int = 1536
    steps: int = 700
    batch_size: int = 32
    lr: float = 4e-3
    smooth_weight: float = 0.05
    seed: int = 0
    eye: EyeConfig = field(default_factory=EyeConfig)
    net: GazeNetConfig = field(default_factory=GazeNetConfig)

    def __post_init__(self) -> None:
        for name in ("pairs", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"GazeTrainConfig.{name}={getattr(self, name)} must be >= 1")
        if self.lr <= 0 or self.smooth_weight < 0:
            raise ConfigError(f"lr={self.lr} must be > 0 and smooth_weight={self.smooth_weight} >= 0")

    @classmethod
    def quick(cls, seed: int = 0) -> GazeTrainConfig:
        """A small recipe for tests and demos (~30 s on one core); clearly better than no correction."""
        return cls(pairs=512, steps=250, seed=seed)

    def digest(self) -> str:
        """Short hash of everything that changes the trained weights (the cache key)."""
        blob = json.dumps({"recipe": asdict(self), "architecture": EyeWarpNet.VERSION,
                           "torch": torch.__version__.split("+")[0]},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class GazeTrainResult:
    """The trained corrector, its loss curve (mean per 50 steps), first/last loss and the wall time."""

    model: GazeCorrector
    history: list[float]
    first_loss: float
    last_loss: float
    seconds: float
    config: GazeTrainConfig

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (no weights)."""
        return {"history": self.history, "first_loss": self.first_loss, "last_loss": self.last_loss,
                "seconds": self.seconds, "config": asdict(self.config)}

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title="gaze training", show_header=False)
        t.add_row("loss", f"{self.first_loss:.4f} -> {self.last_loss:.4f} over {self.config.steps} steps")
        t.add_row("time", f"{self.seconds:.1f} s")
        return t


def canonical_eyes(data: GazePairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Every eye as an image-left eye (right eyes mirrored): x (2n, 2, H, W) and y (2n, 1, H, W)."""
    xl, yl = data.eye("left")
    xr, yr = data.eye("right")
    x = np.concatenate([xl, xr[..., ::-1]])
    y = np.concatenate([yl, yr[..., ::-1]])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


def _loss(net: EyeWarpNet, x: torch.Tensor, y: torch.Tensor, smooth: float) -> torch.Tensor:
    field_ = net(x)
    out = apply_field(x[:, 0:1], field_)
    flow = field_[:, 0:2] / net.config.max_flow
    tv = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean() + (flow[..., 1:] - flow[..., :-1]).abs().mean()
    return (out - y).abs().mean() / 255.0 + smooth * tv


def train_gaze(config: GazeTrainConfig | None = None, train_data: GazePairs | None = None,
               progress: bool = True, net: EyeWarpNet | None = None) -> GazeTrainResult:
    """Train the per-eye network on canonical (left-oriented) eyes; the right sub-model is its exact mirror.

    ``net`` trains that network in place (e.g. a corrector's ``left_model``) instead of a fresh one."""
    from rich.progress import Progress

    config = config or GazeTrainConfig()
    t0 = time.perf_counter()
    data = train_data if train_data is not None else make_pairs(config.pairs, config.eye, seed=config.seed,
                                                                progress=progress)
    x, y = canonical_eyes(data)
    torch.manual_seed(config.seed)
    net = net if net is not None else EyeWarpNet(config.net)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / config.steps)))
    gen = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    net.train()
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("training the gaze corrector", total=config.steps)
        for _ in range(config.steps):
            idx = torch.randint(0, len(x), (config.batch_size,), generator=gen)
            opt.zero_grad()
            loss = _loss(net, x[idx], y[idx], config.smooth_weight)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.advance(task)
    net.eval()
    window = max(1, min(50, config.steps // 4))
    history = [float(np.mean(losses[i:i + window])) for i in range(0, len(losses), window)]
    return GazeTrainResult(model=GazeCorrector(net).eval(), history=history, first_loss=history[0],
                           last_loss=history[-1], seconds=time.perf_counter() - t0, config=config)


def cache_dir() -> Path:
    """Where trained zoo weights are cached: $EDGEDEPLOY_CACHE/zoo, else ~/.cache/edgedeploy/zoo."""
    from ..._io import cache_root

    return cache_root() / "zoo"


def pretrained_gaze(config: GazeTrainConfig | None = None, progress: bool = True) -> GazeCorrector:
    """The corrector trained with ``config``: loaded from the cache, else trained here and cached atomically."""
    config = config or GazeTrainConfig()
    path = cache_dir() / f"gaze-{config.digest()}.pt"
    if path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net = EyeWarpNet(config.net)
            net.load_state_dict(state)
            return GazeCorrector(net).eval()
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which and how to fix
            raise ArtifactError(f"cached gaze weights {path} cannot be loaded ({type(exc).__name__}); delete the "
                                "file to retrain them") from exc
    result = train_gaze(config, progress=progress)
    buf = io.BytesIO()                    # saved from memory: the same weights give the same file bytes
    torch.save(result.model.left_model.state_dict(), buf)
    write_bytes_atomic(path, buf.getvalue())
    return result.model
