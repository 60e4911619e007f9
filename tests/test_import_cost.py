"""`import edgedeploy` (and building the CLI) stays cheap: no onnx, onnxruntime, openvino, nncf or torch."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("onnx", "onnxruntime", "openvino", "nncf", "torch")


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("code", [
    "import edgedeploy",
    "import edgedeploy; edgedeploy.Target; edgedeploy.check; edgedeploy.CheckReport",
    "from edgedeploy.cli import _register; _register()",
])
def test_import_does_not_load_heavy_libraries(code):
    assert _imported_after(code) == []


def test_probe_detects_a_heavy_import():
    assert _imported_after("import edgedeploy, onnx") == ["onnx"]
