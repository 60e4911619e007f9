"""The zoo factories (``create("headbody", variant=..., pretrained=...)``) and ``pretrained=``: train the detector
here, deterministically, and cache the weights by a hash of everything that decides them (architecture, training
config, scene config and seeds, torch version).

Budgets (CPU time on one core, measured): ``"demo"`` = 300 steps on 120 scenes (hw-aware 47 s, baseline 83 s, plus
about 6 s of scene generation), what ``make demo`` uses; ``"bench"`` = 2000 steps on 400 scenes (hw-aware 292 s,
baseline about 560 s); ``"bench-long"`` = 4000 steps (hw-aware 616 s). ``"bench-tall"`` (10 full-height 352x224
crops a step) and ``"bench-wide"`` (8 crops of 256x384) show a step as many pixels as "bench" (16 x 192x256) but
whole near bodies (up to ~300 px tall), which 192-px crops cut: baseline 2000 steps 479 s / 479 s CPU,
hw-aware 3600 steps (the same CPU time) 489 s / 477 s. On 180 held-out scenes, mAP@0.5: baseline bench 93.2,
tall 94.7; hw-aware (3600 steps) tall 93.5, wide 93.9, bench-long (4000 steps) 92.1. ``benchmarks/bench_headbody.py``
compares the variants at equal training CPU time. The cache lives under
``edgedeploy._io.cache_root()/zoo/headbody/``; files are written atomically and loaded with ``weights_only=True``.
A corrupt cache file is retrained and replaced.

Import arrows run one way: model <- targets <- train <- weights (this module registers the factories, so
``model.py`` never needs the training code).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..._io import cache_root, write_bytes_atomic
from ...errors import ArtifactError, ConfigError
from ..registry import register_model
from .model import HeadBodyConfig, HeadBodyNet, build
from .scenes import SceneConfig, generate_scenes
from .train import TrainConfig, TrainResult, train_detector

FORMAT = "edgedeploy-headbody/1"
CACHE_VERSION = 1          # bump when the scene generator or the training loop changes what a config produces
BUDGETS: dict[str, tuple[TrainConfig, int]] = {
    "demo": (TrainConfig(steps=300), 120),
    "bench": (TrainConfig(steps=2000), 400),
    "bench-long": (TrainConfig(steps=4000), 400),   # hw-aware at about the baseline's "bench" CPU time
    "bench-tall": (TrainConfig(steps=2000, batch_size=10, crop=(352, 224)), 400),
    "bench-wide": (TrainConfig(steps=2000, batch_size=8, crop=(256, 384)), 400),
}
TRAIN_SCENE_SEED = 0
TEST_SCENE_SEED = 1


@lru_cache(maxsize=1)
def _training_scenes(n: int, progress: bool) -> Any:
    """The training scenes of a budget (kept for the next variant trained in this process)."""
    return generate_scenes(n, SceneConfig(faces="train"), seed=TRAIN_SCENE_SEED, progress=progress)


def heldout_scenes(n: int = 60, seed: int = TEST_SCENE_SEED) -> Any:
    """The held-out evaluation scenes: test faces only, rooms and people never used for training."""
    return generate_scenes(n, SceneConfig(faces="test"), seed=seed)


def training_key(arch: HeadBodyConfig, train: TrainConfig, n_scenes: int, scene_seed: int) -> str:
    """Hex digest of everything that decides the trained weights."""
    fields = {k: v for k, v in arch.to_dict().items() if k != "name"}      # names are cosmetic
    train_fields = asdict(train)
    if not train_fields["ema"]:
        del train_fields["ema"]         # EMA off: the key of weights trained before the option existed
    blob = json.dumps({"arch": fields, "train": train_fields, "scenes": asdict(SceneConfig()),
                       "n_scenes": n_scenes, "scene_seed": scene_seed, "version": CACHE_VERSION,
                       "torch": torch.__version__.split("+")[0]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def save_detector(model: HeadBodyNet, path: str | os.PathLike[str], train: TrainResult | None = None) -> Path:
    """Write the detector's architecture and weights (and its training summary) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "config": model.config.to_dict(), "state_dict": model.state_dict(),
                "train": json.dumps(train.to_dict() if train else {}, default=str)}, buf)
    return write_bytes_atomic(path, buf.getvalue())


def load_detector(path: str | os.PathLike[str]) -> HeadBodyNet:
    """Read a file written by ``save_detector`` (weights only; no code is executed)."""
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"detector weights {p} do not exist; train and save them with save_detector()")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        raise ArtifactError(f"{p} is not a readable detector checkpoint ({type(exc).__name__}); re-save it with "
                            "save_detector()") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ArtifactError(f"{p} is not a head/body detector checkpoint (format {FORMAT!r}); re-save it with "
                            "save_detector()")
    cfg = {k: v for k, v in ckpt["config"].items() if k != "name"}
    model = HeadBodyNet(HeadBodyConfig(**{**cfg, "widths": tuple(cfg["widths"])}))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise ArtifactError(f"{p}: weights do not fit the stored architecture ({str(exc).splitlines()[0]})") from exc
    model.train_summary = json.loads(ckpt.get("train") or "{}")
    return model.eval()


def pretrained(variant: str, budget: bool | str = True, seed: int = 0, fp16: bool = False,
               progress: bool = True, steps: int | None = None, ema: float | None = None,
               **overrides: Any) -> HeadBodyNet:
    """The variant trained with the named budget (True = "demo"), from the cache when it is there; a path to a
    ``save_detector`` file loads that instead. ``fp16=True`` runs the last 15% of the steps FP16-aware; ``steps``
    and ``ema`` replace the budget's step count and weight-averaging decay (e.g. for an equal-CPU-time run)."""
    if isinstance(budget, (str, os.PathLike)) and str(budget) not in BUDGETS:
        if Path(budget).suffix in (".pt", ".pth") or Path(budget).exists():
            given = sorted(overrides) + ["steps"] * (steps is not None) + ["ema"] * (ema is not None)
            if given:
                raise ConfigError(f"overrides {given} cannot apply to saved weights {budget}; the file stores its "
                                  "own architecture and was trained already")
            return load_detector(budget)
        raise ConfigError(f"pretrained={budget!r}: use True, one of {list(BUDGETS)} or a saved detector path")
    name = "demo" if budget is True else str(budget)
    train_cfg, n_scenes = BUDGETS[name]
    train_cfg = replace(train_cfg, seed=seed, fp16_fraction=0.15 if fp16 else 0.0,
                        steps=train_cfg.steps if steps is None else steps, ema=train_cfg.ema if ema is None else ema)
    arch = HeadBodyConfig.variant(variant, **overrides)
    key = training_key(arch, train_cfg, n_scenes, TRAIN_SCENE_SEED)
    path = cache_root() / "zoo" / "headbody" / f"{arch.name}-{name}-{key[:16]}.pt"
    if path.is_file():
        try:
            return load_detector(path)
        except ArtifactError:
            pass                                   # corrupt cache entry: train again and replace it
    data = _training_scenes(n_scenes, progress)
    torch.manual_seed(seed)
    model = HeadBodyNet(arch)
    result = train_detector(model, data, train_cfg, progress=progress)
    result.meta.update({"budget": name, "n_scenes": n_scenes, "cache_key": key})
    save_detector(model, path, result)
    model.train_summary = json.loads(json.dumps(result.to_dict(), default=str))
    return model.eval()


_trained = pretrained        # the factories' ``pretrained`` argument shadows the function's name


@register_model("headbody")
def headbody(variant: str = "hw-aware", pretrained: bool | str = False, seed: int = 0, fp16: bool = False,
             **overrides: Any) -> HeadBodyNet:
    """The head/body detector. ``pretrained=True`` (or "demo") trains it here on generated scenes, seeded and
    cached (about a minute on one core); "bench" is the longer run; a path loads a ``save_detector`` file."""
    if not pretrained:
        torch.manual_seed(seed)
        return build(variant, **overrides).eval()
    return _trained(variant, pretrained, seed=seed, fp16=fp16, **overrides)


@register_model("headbody-baseline")
def headbody_baseline(pretrained: bool | str = False, seed: int = 0, **kwargs: Any) -> HeadBodyNet:
    """The baseline variant (plain Conv+BN+ReLU, strided convs, transposed-conv up-sampling)."""
    return headbody("baseline", pretrained, seed, **kwargs)


@register_model("headbody-hw")
def headbody_hw(pretrained: bool | str = False, seed: int = 0, **kwargs: Any) -> HeadBodyNet:
    """The hardware-aware variant (S2D stem, DenseFeat down-sampling, PartialConv, PixelShuffle up-sampling)."""
    return headbody("hw-aware", pretrained, seed, **kwargs)
