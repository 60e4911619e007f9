"""Error hierarchy: every message names the thing at fault and what to do about it.

Each error also inherits the matching builtin, so ``except ValueError`` keeps working.
The CLI prints these in one line with exit code 2 (traceback only with ``--debug``).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


class EdgeDeployError(Exception):
    """Base class of every error edgedeploy raises on purpose."""


class ConfigError(EdgeDeployError, ValueError):
    """A config value, option name or combination of options is invalid."""


class ShapeError(EdgeDeployError, ValueError):
    """An input shape or dtype does not fit the model, or could not be parsed."""


class ModelLoadError(EdgeDeployError, ImportError):
    """A model factory, zoo name or model file could not be loaded."""


class ModelRunError(EdgeDeployError, RuntimeError):
    """The model's forward pass failed on the given input."""


class TargetError(EdgeDeployError, ValueError):
    """A target name is unknown or a target YAML is malformed."""


class UnsupportedOpError(EdgeDeployError, ValueError):
    """An operator is not supported by an exporter, runtime or target."""


class ExportError(EdgeDeployError, RuntimeError):
    """An export or compile step failed."""


class ParityError(EdgeDeployError, RuntimeError):
    """An exported artifact's outputs differ from the reference beyond tolerance."""


class CalibrationError(EdgeDeployError, ValueError):
    """Calibration data is missing or has the wrong shape/dtype."""


class ArtifactError(EdgeDeployError, OSError):
    """An artifact file is missing, corrupt, or cannot be written."""


class ToolchainError(EdgeDeployError, RuntimeError):
    """An external toolchain (compiler, plugin, system library) is missing or broken."""


@contextlib.contextmanager
def user_code(what: str) -> Iterator[None]:
    """Run user code (a factory, a forward pass): its ``sys.exit()`` becomes a ModelRunError, not a silent exit."""
    try:
        yield
    except SystemExit as exc:
        raise ModelRunError(f"{what} called sys.exit({exc.code!r}); a model's code must raise an exception, "
                            "not exit the process") from None
