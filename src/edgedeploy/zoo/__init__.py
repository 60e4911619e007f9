"""Model zoo: named factories (``create(name)``), with the data and training loops they need."""
from __future__ import annotations

from .registry import available, create, register_model, register_task, task

__all__ = ["available", "create", "register_model", "register_task", "task"]

from . import digits as _digits  # noqa: E402,F401  (registers its models)
from . import digits_resnet as _digits_resnet  # noqa: E402,F401
from . import reference as _reference  # noqa: E402,F401
from . import gaze as _gaze  # noqa: E402,F401
from . import headbody as _headbody  # noqa: E402,F401
from . import vit as _vit  # noqa: E402,F401
