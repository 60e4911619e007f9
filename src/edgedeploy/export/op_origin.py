"""Map an operator named in an exporter's error back to the module(s) whose forward ran it."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_PATTERNS = (
    re.compile(r"OpOverload\(op='([\w.:]+)'"),                 # dynamo: No ONNX function found for <OpOverload(...)>
    re.compile(r"target=torch\.ops\.([\w.]+?)(?:\.default)?\]"),  # dynamo: Error when translating node ...
    re.compile(r"operator '([\w:.]+)'"),                        # torchscript: Exporting the operator 'aten::x' ...
    re.compile(r"ONNX export failed on an operator with unrecognized namespace ([\w:]+)"),
)


def op_from_error(text: str) -> str | None:
    """The aten operator an exporter error names (``aten::grid_sampler``), or None."""
    for pat in _PATTERNS:
        m = pat.search(text)
        if m:
            op = m.group(1)
            return op.replace("aten.", "aten::", 1) if op.startswith("aten.") else op
    return None


def _norm(op: str) -> str:
    op = op.split("::")[-1].split(".")[0]
    return op.lstrip("_")


def _spy_run(model: Any, inputs: Sequence[Any], on_op: Any) -> None:
    """Run ``model`` once in eager mode, calling ``on_op(func, module, from_input)`` for every aten op dispatched;
    ``from_input`` says whether one of the op's arguments was computed from the model's inputs."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    stack: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    root = f"<root> ({type(model).__name__})"
    keep = [x for x in inputs if isinstance(x, torch.Tensor)]     # alive for the run, so ids are never reused
    derived = {id(x) for x in keep}

    class _Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            flat = [t for t in tree_flatten((args, kwargs or {}))[0] if isinstance(t, torch.Tensor)]
            from_input = any(id(t) in derived for t in flat)
            on_op(func, stack[-1] if stack else root, from_input)
            out = func(*args, **(kwargs or {}))
            if from_input:
                produced = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
                keep.extend(produced)
                derived.update(id(t) for t in produced)
            return out

    def pre(mod: Any, _args: Any) -> None:
        stack.append(f"{names.get(mod) or '<root>'} ({type(mod).__name__})")

    def post(_mod: Any, _args: Any, _out: Any) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post) for m in model.modules()]
    try:
        with torch.inference_mode(), _Spy():
            model(*inputs)
    except Exception:  # noqa: BLE001 - locating is best effort; the caller's own error is what matters
        pass
    finally:
        for h in handles:
            h.remove()


def modules_running(model: Any, inputs: Sequence[Any], op: str) -> list[str]:
    """Qualified names (with class) of the innermost modules whose forward dispatches ``op``."""
    target = _norm(op)
    hits: list[str] = []

    def on_op(func: Any, where: str, _from_input: bool) -> None:
        name = _norm(func._schema.name)
        if name and (name.startswith(target) or target.startswith(name)) and where not in hits:
            hits.append(where)

    _spy_run(model, inputs, on_op)
    return hits


@dataclass(frozen=True)
class DataDependentSite:
    """A place where the model turned a tensor's value into a Python value (a branch or a baked number)."""

    module: str            # qualified module name and class, e.g. "blocks.2 (Gate)"
    location: str          # file:line of the user's code
    code: str              # the source line
    kind: str              # "control flow" or "value"

    def describe(self) -> str:
        """``data-dependent control flow in blocks.2 (Gate) at gate.py:14: if x.mean() > 0:``."""
        return f"data-dependent {self.kind} in {self.module} at {self.location}: {self.code}"


_FLOW = re.compile(r"^\s*(if|elif|while|assert)\b|\bif\b.*\belse\b")


def data_dependent_sites(model: Any, inputs: Sequence[Any]) -> list[DataDependentSite]:
    """Run the model once and list where it reads a value computed from its inputs into Python (``if x.mean() > 0``,
    ``.item()``); values of parameters and buffers (e.g. a fake-quantizer's enable flag) are constants, not listed."""
    import os
    import traceback

    import torch

    sites: dict[str, DataDependentSite] = {}
    skip = (os.path.dirname(torch.__file__), os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def on_op(func: Any, where: str, from_input: bool) -> None:
        if not from_input or func.overloadpacket.__name__ not in ("_local_scalar_dense", "is_nonzero", "equal"):
            return
        frame = next((f for f in reversed(traceback.extract_stack())
                      if not f.filename.startswith(skip) and "<frozen" not in f.filename), None)
        if frame is not None:
            loc = f"{os.path.basename(frame.filename)}:{frame.lineno}"
            code = (frame.line or "").strip()
            sites.setdefault(loc, DataDependentSite(where, loc, code,
                                                    "control flow" if _FLOW.search(code) else "value"))

    _spy_run(model, inputs, on_op)
    return list(sites.values())
