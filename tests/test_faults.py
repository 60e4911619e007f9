"""Faults a user meets: Ctrl-C, a killed run, two runs into one folder, device files and symlinks as outputs,
native code that crashes. Each ends in one line, the right exit code, and nothing broken left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgedeploy.cli import main

SLOW_EXPORT = ["export", "resnet18", "--input", "1x3x224x224", "--to", "onnx,openvino", "--exporter", "torchscript"]


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgedeploy.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the run to reach the expected stage")


def _staging(out: Path) -> list[Path]:
    return [p for p in out.glob(".edgedeploy-staging-*")] if out.exists() else []


def test_ctrl_c_exits_130_with_one_line_and_removes_staging(tmp_path):
    out = tmp_path / "out"
    proc = _cli([*SLOW_EXPORT, "--out", str(out)])
    _wait_for(lambda: bool(_staging(out)))
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in stderr + stdout
    assert not _staging(out) and not (out / ".edgedeploy.lock").exists()
    assert not any(p.suffix == ".tmp" for p in out.iterdir()) if out.exists() else True


def test_killed_run_leaves_no_orphan_compiler_and_the_next_run_cleans_up(tmp_path):
    from edgedeploy.export.myriad_toolchain import ensure_toolchain

    ensure_toolchain(quiet=True)
    out = tmp_path / "out"
    proc = _cli(["export", "resnet18", "--input", "1x3x224x224", "--to", "blob", "--out", str(out)])

    def compiler_pids() -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"myriad_compile" in cmd and str(out).encode() in cmd:
                    pids.append(int(entry.name))
        return pids

    _wait_for(lambda: bool(compiler_pids()), timeout=300)
    proc.kill()
    proc.wait(timeout=30)
    _wait_for(lambda: not compiler_pids(), timeout=10)          # PR_SET_PDEATHSIG: the compiler died with us
    assert _staging(out)                                        # SIGKILL runs no cleanup ...
    rc = main(["export", "digits-cnn", "--input", "1x1x16x16", "--to", "onnx", "--out", str(out)])
    assert rc == 0 and not _staging(out)                        # ... the next run removes the dead run's staging
    assert (out / "digits-cnn.onnx").is_file()


def test_second_run_into_a_busy_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    proc = _cli([*SLOW_EXPORT, "--out", str(out)])
    try:
        _wait_for(lambda: (out / ".edgedeploy.lock").exists() and bool((out / ".edgedeploy.lock").read_text()))
        rc = main(["export", "digits-cnn", "--input", "1x1x16x16", "--to", "onnx", "--out", str(out)])
        captured = capsys.readouterr()
        assert rc == 2 and f"pid {proc.pid}" in captured.err and "another edgedeploy run" in captured.err
        assert not (out / "digits-cnn.onnx").exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_device_and_symlink_outputs_are_never_replaced(tmp_path, capsys):
    target = tmp_path / "real.json"
    target.write_text('{"keep": true}')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    for path in ("/dev/null", str(link), str(tmp_path)):
        assert main(["profile", "digits-cnn", "--input", "1x1x16x16", "--json", path]) == 2
    assert not os.path.isfile("/dev/null") and link.is_symlink() and json.loads(target.read_text()) == {"keep": True}
    err = capsys.readouterr().err
    assert "not a regular file" in err and "symlink" in err and "directory" in err


def test_api_writer_refuses_a_device(tmp_path):
    from edgedeploy.errors import ArtifactError
    from edgedeploy.metrics.profile import profile
    from edgedeploy.zoo.digits import DigitsCNN

    prof = profile(DigitsCNN(), (1, 1, 16, 16))
    with pytest.raises(ArtifactError, match="not a regular file"):
        prof.to_json("/dev/null")


def test_native_crash_in_a_child_is_an_error_not_a_dead_caller():
    from edgedeploy._isolate import run_isolated
    from edgedeploy.errors import ToolchainError

    with pytest.raises(ToolchainError, match=r"crashed \(signal 6, SIGABRT\)"):
        run_isolated(os.abort, what="the test tool")
    assert run_isolated(abs, -3, what="the test tool") == 3            # and the machinery still works
