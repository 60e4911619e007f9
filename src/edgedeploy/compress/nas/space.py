"""The search space: per-stage block type, depth, width, kernel and expansion, plus stem, activation and input
resolution; and ``Arch``, one point of it. Validated when built, so a bad space fails before any training.

A network is ``stem -> stage 1 .. stage N -> global average pool -> linear``. Every stage halves the resolution
with its first block (the transition) and repeats ``depth - 1`` stride-1 blocks of the same type and width
(see ``build.py``). Choices are lists, or ``{low: a, high: b}`` integer ranges in YAML.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import ConfigError

# block type -> (which knobs apply, the minimum width it builds at)
BLOCKS: dict[str, dict[str, Any]] = {
    "conv": {"kernel": True, "expansion": True, "min_width": 1,
             "about": "ConvBNAct k x k, then 1x1 back (residual); transition: strided ConvBNAct"},
    "ghost": {"kernel": True, "expansion": True, "min_width": 1,
              "about": "GhostConv2d k x k to width x expansion, GhostConv2d 1x1 back (residual)"},
    "partial": {"kernel": True, "expansion": True, "min_width": 4,
                "about": "FasterNet block: PartialConv2d k x k, 1x1 expand, 1x1 back (residual)"},
    "dense": {"kernel": True, "expansion": False, "min_width": 4,
              "about": "DenseFeatBlock (strided conv + dense unit, growth conv k x k)"},
    "repvgg": {"kernel": False, "expansion": False, "min_width": 1,
               "about": "RepVGGBlock (3x3 + 1x1 + identity, one 3x3 conv when deployed)"},
    "mobileone": {"kernel": True, "expansion": False, "min_width": 1,
                  "about": "MobileOne unit: depthwise k x k + pointwise, re-parameterizable"},
}
STEMS = {"conv": 1, "strided": 2, "s2d": 2}          # stem -> its stride (s2d: space-to-depth 2x, then 1x1 conv)
ACTS = ("relu", "relu6", "hardswish", "silu")


def _choices(value: Any, what: str, kind: type) -> tuple[Any, ...]:
    """A list of choices or an integer range ``{low, high}``: non-empty, deduplicated, each of ``kind``."""
    if isinstance(value, Mapping):
        if set(value) != {"low", "high"} or kind is not int:
            raise ConfigError(f"{what}: a range is {{low: a, high: b}} of integers, got {dict(value)!r}")
        low, high = value["low"], value["high"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"{what}: range bounds must be integers, got low={low!r}, high={high!r}")
        if low > high:
            raise ConfigError(f"{what}: range low={low} > high={high} is empty; swap them")
        value = list(range(low, high + 1))
    if isinstance(value, (str, int, float, bool)):
        value = [value]
    if not isinstance(value, Sequence) or len(value) == 0:
        raise ConfigError(f"{what}: no choices given; list at least one value")
    out: list[Any] = []
    for v in value:
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind is not bool)
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if not ok:
            raise ConfigError(f"{what}: {v!r} is not a {kind.__name__}")
        if v not in out:
            out.append(v)
    return tuple(out)


@dataclass(frozen=True)
class StageSpace:
    """Choices of one stage (its first block halves the resolution)."""

    blocks: tuple[str, ...] = ("conv",)
    depth: tuple[int, ...] = (1, 2)
    width: tuple[int, ...] = (16, 32)
    kernel: tuple[int, ...] = (3,)
    expansion: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "blocks", _choices(self.blocks, "blocks", str))
        set_(self, "depth", _choices(self.depth, "depth", int))
        set_(self, "width", _choices(self.width, "width", int))
        set_(self, "kernel", _choices(self.kernel, "kernel", int))
        set_(self, "expansion", _choices(self.expansion, "expansion", float))
        unknown = [b for b in self.blocks if b not in BLOCKS]
        if unknown:
            raise ConfigError(f"unknown block {unknown[0]!r}; choose from {', '.join(BLOCKS)}")
        for name, values, low in (("depth", self.depth, 1), ("width", self.width, 1)):
            if min(values) < low:
                raise ConfigError(f"{name} choices must be >= {low}, got {list(values)}")
        bad = [k for k in self.kernel if k < 1 or k % 2 == 0]
        if bad:
            raise ConfigError(f"kernel {bad[0]} is not an odd size >= 1 ('same' padding needs odd kernels)")
        if min(self.expansion) <= 0 or not all(math.isfinite(e) for e in self.expansion):
            raise ConfigError(f"expansion choices must be finite and > 0, got {list(self.expansion)}")
        for b in self.blocks:
            need = BLOCKS[b]["min_width"]
            if min(self.width) < need:
                raise ConfigError(f"block {b!r} needs width >= {need} but the width choices include "
                                  f"{min(self.width)}; raise the widths or drop {b!r}")


@dataclass(frozen=True)
class StageArch:
    """One stage of a sampled architecture."""

    block: str
    depth: int
    width: int
    kernel: int = 3
    expansion: float = 1.0


@dataclass(frozen=True)
class Arch:
    """One architecture: what ``build_model`` turns into an ``nn.Module``."""

    resolution: int
    stem: str
    stem_width: int
    act: str
    stages: tuple[StageArch, ...]
    in_channels: int = 1
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The model input (batch of one)."""
        return (1, self.in_channels, self.resolution, self.resolution)

    @property
    def key(self) -> str:
        """A short unique label, e.g. ``r16 s2d8 relu | conv d2 w16 k3 e2 | ghost d1 w32 k3 e1``."""
        parts = [f"r{self.resolution} {self.stem}{self.stem_width} {self.act}"]
        for s in self.stages:
            parts.append(f"{s.block} d{s.depth} w{s.width} k{s.kernel} e{s.expansion:g}")
        return " | ".join(parts)

    @property
    def op_key(self) -> str:
        """What decides which op types the model contains (widths and depths do not)."""
        return f"{self.stem} {self.act} " + " ".join(f"{s.block}k{s.kernel}" for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``Arch.from_dict`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Arch:
        """Rebuild from ``to_dict()``."""
        stages = tuple(StageArch(**s) for s in d["stages"])
        return cls(**{**d, "stages": stages})


@dataclass(frozen=True)
class SearchSpace:
    """Stages plus global choices: input resolution, stem (conv / strided / s2d), stem width, activation."""

    # the default: two stages over every block type, for digits-sized inputs (configs/nas/digits.yaml)
    stages: tuple[StageSpace, ...] = field(default_factory=lambda: (
        StageSpace(tuple(BLOCKS), (1, 2), (16, 24, 32), (3, 5), (1.0, 2.0)),
        StageSpace(tuple(BLOCKS), (1, 2), (32, 48, 64), (3, 5), (1.0, 2.0))))
    resolution: tuple[int, ...] = (16, 24, 32)
    stem: tuple[str, ...] = ("conv", "strided", "s2d")
    stem_width: tuple[int, ...] = (8, 16)
    act: tuple[str, ...] = ("relu",)
    in_channels: int = 1
    num_classes: int = 10

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.stages, (list, tuple)) or len(self.stages) == 0:
            raise ConfigError("the search space has no stages; list at least one stage under 'stages'")
        set_(self, "stages", tuple(s if isinstance(s, StageSpace) else _stage(s, i)
                                   for i, s in enumerate(self.stages, 1)))
        set_(self, "resolution", _choices(self.resolution, "resolution", int))
        set_(self, "stem", _choices(self.stem, "stem", str))
        set_(self, "stem_width", _choices(self.stem_width, "stem_width", int))
        set_(self, "act", _choices(self.act, "act", str))
        for name, values, valid in (("stem", self.stem, STEMS), ("act", self.act, ACTS)):
            bad = [v for v in values if v not in valid]
            if bad:
                raise ConfigError(f"unknown {name} {bad[0]!r}; choose from {', '.join(valid)}")
        for name in ("in_channels", "num_classes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if min(self.stem_width) < 1 or min(self.resolution) < 1:
            raise ConfigError("stem_width and resolution choices must be >= 1")
        for r, stem in itertools.product(self.resolution, self.stem):
            halvings = len(self.stages) + (STEMS[stem] == 2)
            if r < 2 ** halvings:
                raise ConfigError(f"resolution {r} cannot be halved {halvings} times ({len(self.stages)} stages + "
                                  f"stem {stem!r}); use resolutions >= {2 ** halvings} or fewer stages")
            if stem == "s2d" and r % 2:
                raise ConfigError(f"stem 's2d' needs an even resolution, got {r}; use even resolutions or drop s2d")

    @property
    def size(self) -> int:
        """How many distinct architectures the space holds."""
        n = len(self.resolution) * len(self.stem) * len(self.stem_width) * len(self.act)
        for s in self.stages:
            n *= len(s.depth) * len(s.width) * sum(
                (len(s.kernel) if BLOCKS[b]["kernel"] else 1) * (len(s.expansion) if BLOCKS[b]["expansion"] else 1)
                for b in s.blocks)
        return n

    def suggest(self, choose: Callable[[str, tuple[Any, ...]], Any]) -> Arch:
        """An architecture from ``choose(name, choices)`` (Optuna's ``suggest_categorical``, or a random pick);
        kernel and expansion are asked only for blocks that use them."""
        stages = []
        for i, s in enumerate(self.stages):
            block = choose(f"s{i}.block", s.blocks)
            spec = BLOCKS[block]
            stages.append(StageArch(
                block=block, depth=choose(f"s{i}.depth", s.depth), width=choose(f"s{i}.width", s.width),
                kernel=choose(f"s{i}.kernel", s.kernel) if spec["kernel"] else 3,
                expansion=choose(f"s{i}.expansion", s.expansion) if spec["expansion"] else 1.0))
        return Arch(resolution=choose("resolution", self.resolution), stem=choose("stem", self.stem),
                    stem_width=choose("stem_width", self.stem_width), act=choose("act", self.act),
                    stages=tuple(stages), in_channels=self.in_channels, num_classes=self.num_classes)

    def sample(self, rng: Any) -> Arch:
        """A random architecture, each choice uniform (``rng``: a ``numpy.random.Generator``)."""
        return self.suggest(lambda _name, choices: choices[int(rng.integers(len(choices)))])

    def corners(self, limit: int = 256, seed: int = 0) -> list[Arch]:
        """The smallest architecture (minimal resolution, widths, depths, kernels, expansions) of every stem x
        activation x per-stage block combination (a seeded sample of ``limit`` of them when there are more)."""
        combos = list(itertools.product(self.stem, self.act, *(s.blocks for s in self.stages)))
        if len(combos) > limit:
            import random

            combos = random.Random(seed).sample(combos, limit)
        out = []
        for stem, act, *blocks in combos:
            stages = tuple(StageArch(b, min(s.depth), min(s.width), min(s.kernel) if BLOCKS[b]["kernel"] else 3,
                                     min(s.expansion) if BLOCKS[b]["expansion"] else 1.0)
                           for b, s in zip(blocks, self.stages))
            out.append(Arch(min(self.resolution), stem, min(self.stem_width), act, stages, self.in_channels,
                            self.num_classes))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-ready dict (``load_space`` reads it back)."""
        return asdict(self)


def _stage(d: Any, index: int) -> StageSpace:
    if not isinstance(d, Mapping):
        raise ConfigError(f"stage {index} must be a mapping of blocks/depth/width/kernel/expansion, got {d!r}")
    unknown = sorted(set(d) - {"blocks", "depth", "width", "kernel", "expansion"})
    if unknown:
        raise ConfigError(f"stage {index}: unknown key {unknown[0]!r}; valid: blocks, depth, width, kernel, expansion")
    try:
        return StageSpace(**d)
    except ConfigError as exc:
        raise ConfigError(f"stage {index}: {exc}") from None


def load_space(spec: Mapping[str, Any] | SearchSpace) -> SearchSpace:
    """A SearchSpace from a dict (the ``space:`` section of a NAS YAML config); keys are checked by name."""
    if isinstance(spec, SearchSpace):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(f"the search space must be a mapping (stages, resolution, stem, ...), got {spec!r}")
    valid = {"stages", "resolution", "stem", "stem_width", "act", "in_channels", "num_classes"}
    unknown = sorted(set(spec) - valid)
    if unknown:
        raise ConfigError(f"search space: unknown key {unknown[0]!r}; valid: {', '.join(sorted(valid))}")
    if "stages" not in spec or not spec["stages"]:
        raise ConfigError("the search space has no stages; list at least one stage under 'stages'")
    return SearchSpace(**{k: tuple(v) if k == "stages" and isinstance(v, list) else v for k, v in spec.items()})
