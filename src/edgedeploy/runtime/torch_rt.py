"""PyTorch eager backend: runs an ``nn.Module`` (the reference every export is compared with)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError, ModelRunError
from .base import Session, TensorInfo, register_runtime


def flatten_outputs(out: Any) -> list[Any]:
    """Tensors of a model's output (tuples, lists and dicts flattened in order)."""
    if isinstance(out, dict):
        return [t for v in out.values() for t in flatten_outputs(v)]
    if isinstance(out, (list, tuple)):
        return [t for v in out for t in flatten_outputs(v)]
    return [out]


@register_runtime("torch")
class TorchSession(Session):
    """Eager torch on CPU. Options: ``example_inputs`` (fixes the input signature), ``input_names``."""

    suffixes = ("module",)

    def _open(self, source: Any, threads: int | None, options: dict[str, Any]) -> None:
        import torch

        if not isinstance(source, torch.nn.Module):
            raise ConfigError(f"the torch runtime runs an nn.Module, not {type(source).__name__}; "
                              "for .onnx/.xml files use runtime='onnxruntime' or 'openvino'")
        unknown = set(options) - {"example_inputs", "input_names"}
        if unknown:
            raise ConfigError(f"unknown torch runtime option(s) {sorted(unknown)}; valid: example_inputs, input_names")
        self.model = source.eval()
        example = options.get("example_inputs")
        self._example = None if example is None else [np.asarray(a) if not hasattr(a, "numpy") else a.detach().numpy()
                                                      for a in (example if isinstance(example, (list, tuple))
                                                                else (example,))]
        self._outputs: list[TensorInfo] = []

    def _describe(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        if self._example is None:
            return [], []
        names = list(self.options.get("input_names") or [f"input{i}" for i in range(len(self._example))])
        if len(names) != len(self._example):
            raise ConfigError(f"input_names has {len(names)} names for {len(self._example)} example inputs")
        inputs = [TensorInfo(n, tuple(a.shape), str(a.dtype)) for n, a in zip(names, self._example)]
        outs = self._infer(self._example)
        return inputs, [TensorInfo(f"output{i}", tuple(o.shape), str(o.dtype)) for i, o in enumerate(outs)]

    def _infer(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        prev = torch.get_num_threads()
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                out = self.model(*[torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        except Exception as exc:  # noqa: BLE001 - the user's forward pass
            shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in arrays)
            raise ModelRunError(f"{type(self.model).__name__}.forward failed on inputs ({shapes}): "
                                f"{type(exc).__name__}: {exc}") from exc
        finally:
            torch.set_num_threads(prev)
        return [t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t) for t in flatten_outputs(out)]
