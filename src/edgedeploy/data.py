"""One data adapter for every stage: calibration, evaluation, training and distillation read data the same way.

Accepted everywhere a ``train_data=``, ``calibration=`` or ``eval_data=`` argument appears:
- a tensor / array ``(N, ...)`` (one big batch, split into batches), or a dict of them by input name;
- an ``(x, y)`` pair with integer labels ``y`` of length N;
- a list of batches or a ``torch.utils.data.DataLoader`` yielding tensors, ``(x, y)`` pairs or dicts;
- a splits object with ``train`` and ``test`` attributes (each an ``(x, y)`` pair), e.g. the zoo's digits:
  training and calibration read ``train``, evaluation reads ``test``;
- a spec string (``resolve``): a named built-in dataset (``digits``), a folder of images (jpg/png/bmp, resized
  to the model input, scaled with ``ImageConfig``), or a ``.npy`` file.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import CalibrationError, ConfigError

ROLES = {"train": "training", "calibration": "calibration", "evaluation": "evaluation"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_DATASETS: dict[str, Callable[[tuple[int, ...]], Any]] = {}


class InputSpec(NamedTuple):
    """A model input: name, shape (None for dynamic dims) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class Batch:
    """Model inputs of one batch (in input order) and integer labels when the data has them."""

    inputs: tuple[np.ndarray, ...]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs[0])


@dataclass(frozen=True)
class ImageConfig:
    """How images from a folder become model input: ``(pixel - mean) / scale`` per channel (pixels 0-255, RGB)."""

    mean: tuple[float, ...] = (0.0,)
    scale: tuple[float, ...] = (255.0,)        # default: pixels scaled to [0, 1]
    limit: int = 1000                          # images read at most

    def __post_init__(self) -> None:
        for name in ("mean", "scale"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values or not all(math.isfinite(v) for v in values):
                raise ConfigError(f"image {name} {getattr(self, name)!r} must be finite numbers")
            object.__setattr__(self, name, values)
        if any(v == 0 for v in self.scale):
            raise ConfigError(f"image scale {self.scale} contains 0; scale values divide the pixels")
        if self.limit < 1:
            raise ConfigError(f"image limit must be >= 1 (got {self.limit})")

    @property
    def is_default(self) -> bool:
        """True when pixels are only scaled to [0, 1] (the user gave no normalization)."""
        return self.mean == (0.0,) and self.scale == (255.0,)


@dataclass(frozen=True)
class Splits:
    """Labelled train/test tensors (the splits protocol every stage reads): ``train``/``test`` pairs and batches."""

    x_train: Any
    y_train: Any
    x_test: Any
    y_test: Any

    @property
    def train(self) -> tuple[Any, Any]:
        """The training split as an (x, y) pair (training and calibration read it)."""
        return self.x_train, self.y_train

    @property
    def test(self) -> tuple[Any, Any]:
        """The test split as an (x, y) pair (evaluation reads it)."""
        return self.x_test, self.y_test

    def batches(self, batch_size: int = 64, train: bool = True, seed: int = 0) -> list[tuple[Any, Any]]:
        """List of (x, y) batches; training batches are shuffled with ``seed``."""
        import torch

        x, y = (self.x_train, self.y_train) if train else (self.x_test, self.y_test)
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)) if train else torch.arange(len(x))
        return [(x[idx[i:i + batch_size]], y[idx[i:i + batch_size]]) for i in range(0, len(x), batch_size)]


def register_dataset(name: str, loader: Callable[[tuple[int, ...]], Any]) -> None:
    """Register a built-in dataset: ``loader(input_shape)`` returns a splits object or an ``(x, y)`` pair."""
    _DATASETS[name] = loader


def datasets() -> list[str]:
    """Names of the built-in datasets: registered ones and those declared as ``edgedeploy.datasets`` entry points
    (the zoo's digits and scenes), loaded on first use so this module never imports the zoo."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="edgedeploy.datasets"):
        if ep.name not in _DATASETS:
            _DATASETS[ep.name] = ep.load()
    return sorted(_DATASETS)


def resolve(spec: Any, shape: tuple[int, ...] | None, role: str = "calibration",
            images: ImageConfig | None = None) -> Any:
    """Turn a spec string (dataset name, image folder, .npy file) into data; anything else is returned as is."""
    if not isinstance(spec, (str, Path)):
        return spec
    text = str(spec)
    if text in datasets():
        if shape is None:
            raise ConfigError(f"dataset {text!r} needs the model's input shape (--input)")
        return _DATASETS[text](tuple(shape))
    path = Path(text)
    if path.is_dir():
        if shape is None:
            raise ConfigError(f"the image folder {path} needs the model's input shape (--input) to resize to")
        return load_images(path, shape, images or ImageConfig())
    if path.suffix.lower() == ".npy" and path.is_file():
        return load_npy(path, role)
    raise CalibrationError(f"unknown dataset {text!r} for {ROLES.get(role, role)} data: not a built-in dataset "
                           f"({', '.join(datasets())}), an existing folder of images or a .npy file")


def load_npy(path: str | Path, role: str = "calibration") -> np.ndarray:
    """A numeric array from a ``.npy`` file (never unpickled), checked for NaN/inf."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise CalibrationError(f"{path} is not a valid .npy array file; save a numeric array with numpy.save")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        why = "holds Python objects (refused: loading them would unpickle)" if "allow_pickle" in str(exc) \
            else "is not a valid .npy array file"
        raise CalibrationError(f"{path} {why}; save a numeric array with numpy.save") from exc
    except OSError as exc:
        raise CalibrationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not isinstance(arr, np.ndarray):
        raise CalibrationError(f"{path} holds several arrays (.npz); save one array (N, ...) with numpy.save")
    return _numeric(arr, f"{ROLES.get(role, role)} file {path.name}")


def load_images(folder: Path, shape: tuple[int, ...], config: ImageConfig) -> Any:
    """Images of ``folder`` (class sub-folders give labels) resized to ``shape`` (NCHW or NHWC, 1 or 3 channels)."""
    from PIL import Image

    if len(shape) != 4:
        raise ConfigError(f"an image folder needs a 4-D image input, but the model takes {'x'.join(map(str, shape))}")
    nchw = shape[1] in (1, 3) or shape[3] not in (1, 3)
    channels, height, width = (shape[1], shape[2], shape[3]) if nchw else (shape[3], shape[1], shape[2])
    if channels not in (1, 3):
        raise ConfigError(f"an image folder feeds 1 or 3 channels, but the model input has {channels}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:config.limit]
    if not files:
        raise CalibrationError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); point at a folder of photos")
    classes = sorted({p.parent.relative_to(folder).as_posix() for p in files})
    labelled = len(classes) > 1
    arrays, labels = [], []
    for p in files:
        try:
            with Image.open(p) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                arrays.append(np.asarray(img, dtype=np.float32).reshape(height, width, channels))
        except OSError as exc:
            raise CalibrationError(f"cannot read image {p} ({exc}); remove or replace it") from exc
        labels.append(classes.index(p.parent.relative_to(folder).as_posix()))
    x = np.stack(arrays)
    per = [1] * 4
    per[3] = -1
    mean, scale = np.asarray(config.mean, np.float32), np.asarray(config.scale, np.float32)
    for name, v in (("mean", mean), ("scale", scale)):
        if v.size not in (1, channels):
            raise ConfigError(f"image {name} has {v.size} values but the model input has {channels} channels")
    x = (x - mean.reshape(per if mean.size > 1 else [1])) / scale.reshape(per if scale.size > 1 else [1])
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if nchw else x)
    return (x, np.asarray(labels, np.int64)) if labelled else x


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _numeric(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        raise CalibrationError(f"{what} has dtype {arr.dtype}, not numbers; give a numeric array (N, ...)")
    if arr.ndim == 0 or len(arr) == 0:
        raise CalibrationError(f"{what} is empty; give at least one sample (N, ...)")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise CalibrationError(f"{what} contains {bad} NaN/inf value(s); clean or drop those samples")
    return arr


def _is_labels(x: Any, y: Any) -> bool:
    ya = _array(y)
    return ya.ndim == 1 and ya.dtype.kind in "iu" and len(ya) == len(_array(x))


def _splits_part(data: Any, role: str) -> Any:
    if hasattr(data, "train") and hasattr(data, "test") and not isinstance(data, Mapping):
        return data.test if role == "evaluation" else data.train
    return data


def batches(data: Any, role: str = "calibration", batch_size: int = 32, limit: int | None = None,
            n_inputs: int = 1) -> list[Batch]:
    """Normalize any accepted data into checked numpy batches (``limit``: samples kept at most)."""
    if role not in ROLES:
        raise ConfigError(f"unknown data role {role!r}; one of {', '.join(ROLES)}")
    what = f"{ROLES[role]} data"
    if data is None:
        return []
    data = _splits_part(data, role)
    if isinstance(data, (str, Path)):
        raise ConfigError(f"{what} {data!r} is a path or name; resolve it with edgedeploy.data.resolve(spec, shape)")
    labels = None
    if isinstance(data, (tuple, list)) and len(data) == 2 and n_inputs == 1 and hasattr(data[0], "shape") \
            and _is_labels(*data):
        data, labels = data[0], _array(data[1])
    if hasattr(data, "shape") or isinstance(data, Mapping):
        first = _inputs(data, what, n_inputs)
        n = len(first[0])
        items: Iterable[Any] = [Batch(tuple(a[i:i + batch_size] for a in first),
                                      None if labels is None else labels[i:i + batch_size])
                                for i in range(0, n, batch_size)]
    elif isinstance(data, Iterable) and not isinstance(data, (bytes, str)):
        items = data
    else:
        raise CalibrationError(f"{what} of type {type(data).__name__} is not usable; pass a tensor/array (N, ...), "
                               "an (x, y) pair, a list of batches, a dict of inputs, a DataLoader or an image folder")
    out: list[Batch] = []
    seen = 0
    for item in items:
        batch = item if isinstance(item, Batch) else _batch(item, what, n_inputs)
        out.append(batch)
        seen += len(batch)
        if limit is not None and seen >= limit:
            break
    if not out:
        raise CalibrationError(f"{what} is empty; pass at least one batch")
    return out


def _inputs(item: Any, what: str, n_inputs: int) -> tuple[np.ndarray, ...]:
    if isinstance(item, Mapping):
        arrays = tuple(_numeric(_array(v), f"{what} input {k!r}") for k, v in item.items())
    elif isinstance(item, (tuple, list)) and n_inputs > 1:
        if len(item) != n_inputs:
            raise CalibrationError(f"{what} batch has {len(item)} tensors but the model has {n_inputs} inputs; "
                                   "pass one tensor per input or a dict by input name")
        arrays = tuple(_numeric(_array(v), what) for v in item)
    else:
        arrays = (_numeric(_array(item), what),)
    if len({len(a) for a in arrays}) > 1:
        raise CalibrationError(f"{what} inputs have different batch sizes {[len(a) for a in arrays]}")
    return arrays


def _batch(item: Any, what: str, n_inputs: int) -> Batch:
    if isinstance(item, (tuple, list)) and len(item) == 2 and n_inputs == 1 and _is_labels(*item):
        return Batch(_inputs(item[0], what, 1), _array(item[1]))
    if isinstance(item, (tuple, list)) and len(item) == 1:
        item = item[0]
    if isinstance(item, Mapping) and "labels" in item and n_inputs == 1:
        rest = {k: v for k, v in item.items() if k != "labels"}
        return Batch(_inputs(rest, what, 1), _array(item["labels"]))
    return Batch(_inputs(item, what, n_inputs))


def to_feeds(data: Any, specs: list[InputSpec], role: str = "calibration", batch_size: int = 32,
             limit: int | None = None) -> list[dict[str, np.ndarray]]:
    """Batches as ONNX feeds (input name -> array), checked against the model's inputs and cast to their dtypes;
    a model with a fixed batch size gets batches of exactly that size."""
    fixed = specs[0].shape[0] if specs and specs[0].shape else None
    got = batches(data, role, fixed or batch_size, limit, n_inputs=len(specs))
    if fixed:
        got = _rebatch(got, fixed)
    return [check_feed(b, specs, role) for b in got]


def _rebatch(got: list[Batch], size: int) -> list[Batch]:
    """The same samples in batches of exactly ``size`` (a remainder that does not fill one is dropped)."""
    inputs = [np.concatenate([b.inputs[i] for b in got]) for i in range(len(got[0].inputs))]
    labels = np.concatenate([b.labels for b in got]) if all(b.labels is not None for b in got) else None
    n = (len(inputs[0]) // size) * size
    if n == 0:
        raise CalibrationError(f"the model takes batches of exactly {size} samples but the data has only "
                               f"{len(inputs[0])}")
    return [Batch(tuple(a[i:i + size] for a in inputs), None if labels is None else labels[i:i + size])
            for i in range(0, n, size)]


def labelled_feeds(data: Any, specs: list[InputSpec], batch_size: int = 256
                   ) -> tuple[list[dict[str, np.ndarray]], np.ndarray | None]:
    """Evaluation feeds plus the integer labels when every batch carries them."""
    got = batches(data, "evaluation", batch_size, n_inputs=len(specs)) if data is not None else []
    fixed = specs[0].shape[0] if specs and specs[0].shape else None
    if got and fixed:
        got = _rebatch(got, fixed)
    feeds = [check_feed(b, specs, "evaluation") for b in got]
    if got and all(b.labels is not None for b in got):
        return feeds, np.concatenate([b.labels for b in got])
    return feeds, None


def check_feed(batch: Batch, specs: list[InputSpec], role: str = "calibration") -> dict[str, np.ndarray]:
    """One batch as a feed: count, rank and fixed dims checked against ``specs``; cast to the input dtypes."""
    what = f"{ROLES.get(role, role)} data"
    if len(batch.inputs) != len(specs):
        raise CalibrationError(f"{what} has {len(batch.inputs)} input(s) but the model takes {len(specs)} "
                               f"({', '.join(s.name for s in specs)})")
    out = {}
    for s, arr in zip(specs, batch.inputs):
        fixed = all(d is None or d == a for d, a in zip(s.shape[1:], arr.shape[1:]))
        if arr.ndim != len(s.shape) or not fixed:
            want = "x".join("N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(s.shape))
            raise CalibrationError(f"{what} for input {s.name!r} has shape {'x'.join(map(str, arr.shape))} but the "
                                   f"model expects {want}; reshape or resize the data to the model's input")
        out[s.name] = np.ascontiguousarray(arr.astype(s.dtype, copy=False))
    return out


def first_inputs(data: Any, role: str = "calibration", n_inputs: int = 1) -> tuple[np.ndarray, ...] | None:
    """The first sample's inputs (batch of 1), to learn a model's input shape; None when there is no data."""
    if data is None:
        return None
    got = batches(data, role, batch_size=1, limit=1, n_inputs=n_inputs)
    return tuple(a[:1] for a in got[0].inputs)


def as_tensors(example_inputs: Any) -> tuple[Any, ...]:
    """Normalize one tensor/array or a sequence of them to a tuple of torch tensors."""
    import torch

    items = example_inputs if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    if not items:
        raise ConfigError("example_inputs is empty; pass a tensor (or a tuple of tensors) shaped like the real input")
    out = []
    for i, x in enumerate(items):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"example input {i} is a {type(x).__name__}; pass torch tensors or numpy arrays")
        out.append(x)
    return tuple(out)
