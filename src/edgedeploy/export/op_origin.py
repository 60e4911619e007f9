"""Map an operator named in an exporter's error back to the module(s) whose forward ran it."""
from __future__ import annotations

import re
from collections.abc import Sequence
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


def modules_running(model: Any, inputs: Sequence[Any], op: str) -> list[str]:
    """Qualified names (with class) of the innermost modules whose forward dispatches ``op``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    target = _norm(op)
    stack: list[str] = []
    hits: list[str] = []
    names = {m: n for n, m in model.named_modules()}

    class _Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            name = _norm(func._schema.name)
            if name and (name.startswith(target) or target.startswith(name)):
                where = stack[-1] if stack else type(model).__name__
                if where not in hits:
                    hits.append(where)
            return func(*args, **(kwargs or {}))

    def pre(mod: Any, _args: Any) -> None:
        stack.append(f"{names.get(mod) or '<root>'} ({type(mod).__name__})")

    def post(_mod: Any, _args: Any, _out: Any) -> None:
        stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post) for m in model.modules()]
    try:
        with torch.inference_mode(), _Spy():
            model(*inputs)
    except Exception:  # noqa: BLE001 - locating the op is best effort; the export error is what matters
        pass
    finally:
        for h in handles:
            h.remove()
    return hits
