"""Turn the user's calibration/evaluation data into validated ONNX feeds (name -> batch array)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from ...errors import CalibrationError

Feed = dict[str, np.ndarray]


class InputSpec(NamedTuple):
    """A model input: name, shape (None for dynamic dims) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


def onnx_inputs(path: Any) -> list[InputSpec]:
    """The graph inputs of an ONNX file (initializers excluded)."""
    import onnx
    from onnx import helper

    m = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    specs = []
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim)
        specs.append(InputSpec(vi.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))))
    return specs


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _is_labels(x: Any, y: Any) -> bool:
    ya = _array(y)
    return ya.ndim == 1 and np.issubdtype(ya.dtype, np.integer) and len(ya) == len(_array(x))


def _feed(item: Any, specs: list[InputSpec], what: str) -> Feed:
    if isinstance(item, Mapping):
        return {str(k): _array(v) for k, v in item.items()}
    if isinstance(item, (tuple, list)) and len(item) == 2 and len(specs) == 1 and _is_labels(*item):
        item = item[0]                                  # an (x, y) batch: calibration needs only x
    if isinstance(item, (tuple, list)) and len(specs) > 1:
        if len(item) != len(specs):
            raise CalibrationError(f"{what} batch has {len(item)} tensors but the model has {len(specs)} inputs "
                                   f"({', '.join(s.name for s in specs)}); pass one tensor per input or a dict")
        return {s.name: _array(v) for s, v in zip(specs, item)}
    return {specs[0].name: _array(item)}


def to_feeds(data: Any, specs: list[InputSpec], what: str = "calibration", batch_size: int = 32,
             limit: int | None = None) -> list[Feed]:
    """Normalize tensors, arrays, (x, y) pairs, dicts, lists of batches or a DataLoader into checked feeds."""
    if data is None:
        return []
    if hasattr(data, "x_train"):                         # a dataset object such as zoo.digits.DigitsData
        data = data.x_train if what == "calibration" else data.x_test
    if isinstance(data, (tuple, list)) and len(data) == 2 and len(specs) == 1 and _is_labels(*data):
        data = data[0]
    if hasattr(data, "shape") or isinstance(data, Mapping):   # one big batch: split it
        feed = _feed(data, specs, what)
        n = len(next(iter(feed.values())))
        items: Iterable[Any] = [{k: v[i:i + batch_size] for k, v in feed.items()} for i in range(0, n, batch_size)]
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        items = data
    else:
        raise CalibrationError(f"{what} data of type {type(data).__name__} is not usable; pass a tensor/array "
                               "(N, ...), an (x, y) pair, a list of batches, a dict of inputs or a DataLoader")
    feeds, seen = [], 0
    for item in items:
        feed = check_feed(_feed(item, specs, what), specs, what)
        feeds.append(feed)
        seen += len(next(iter(feed.values())))
        if limit is not None and seen >= limit:
            break
    if not feeds and data is not None:
        raise CalibrationError(f"{what} data is empty; pass at least one batch of inputs")
    return feeds


def check_feed(feed: Feed, specs: list[InputSpec], what: str) -> Feed:
    """Check names, rank and fixed dims of one feed against the model inputs; cast to the input dtypes."""
    names = [s.name for s in specs]
    missing = [n for n in names if n not in feed]
    if missing:
        raise CalibrationError(f"{what} data lacks model input(s) {', '.join(missing)} "
                               f"(got {', '.join(feed) or 'nothing'}); the model's inputs are {', '.join(names)}")
    out = {}
    for s in specs:
        arr = feed[s.name]
        fixed = all(d is None or d == a for d, a in zip(s.shape[1:], arr.shape[1:]))
        if arr.ndim != len(s.shape) or not fixed:
            want = "x".join("N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(s.shape))
            raise CalibrationError(f"{what} data for input {s.name!r} has shape {tuple(arr.shape)} but the model "
                                   f"expects {want}; reshape or resize the data to the model's input")
        out[s.name] = np.ascontiguousarray(arr.astype(s.dtype, copy=False))
    return out


def eval_split(data: Any, specs: list[InputSpec]) -> tuple[list[Feed], np.ndarray | None]:
    """Evaluation feeds plus integer labels when the data carries them ((x, y) or a dataset with y_test)."""
    if data is None:
        return [], None
    labels = None
    if hasattr(data, "x_test"):
        data, labels = data.x_test, _array(data.y_test)
    elif isinstance(data, (tuple, list)) and len(data) == 2 and len(specs) == 1 and _is_labels(*data):
        data, labels = data[0], _array(data[1])
    return to_feeds(data, specs, what="evaluation", batch_size=256), labels


def concat(outputs: list[np.ndarray]) -> np.ndarray:
    """Concatenate per-batch outputs along the batch dim."""
    return np.concatenate([np.asarray(o) for o in outputs], axis=0)
