"""Artifacts are written atomically and described by a manifest."""
from __future__ import annotations

import json

import pytest

from edgedeploy._io import atomic_path, ensure_dir, sha256_file, update_manifest, write_json_atomic
from edgedeploy.errors import ArtifactError


def test_atomic_path_leaves_nothing_when_the_writer_crashes(tmp_path) -> None:
    dest = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_artifacts_get_normal_permissions(tmp_path) -> None:
    import os
    import stat

    path = write_json_atomic(tmp_path / "m.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_atomic_path_replaces_the_old_file_only_on_success(tmp_path) -> None:
    dest = tmp_path / "a.json"
    write_json_atomic(dest, {"v": 1})
    with pytest.raises(ValueError), atomic_path(dest) as tmp:
        tmp.write_text("{broken")
        raise ValueError
    assert json.loads(dest.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_manifest_records_hashes_and_merges(tmp_path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"abc")
    update_manifest(tmp_path, "onnx", {"files": ["m.onnx"], "config": {"opset": 17}})
    update_manifest(tmp_path, "openvino", {"files": []})
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert set(m) == {"m.onnx", "openvino"}                 # keyed by artifact (a stage without files by name)
    assert m["m.onnx"]["stage"] == "onnx" and m["m.onnx"]["sha256"]["m.onnx"] == sha256_file(tmp_path / "m.onnx")
    (tmp_path / "w.pt").write_bytes(b"w")
    update_manifest(tmp_path, "bundle", {"files": ["w.pt", "m.onnx"]})      # lists m.onnx as it is: both stay
    assert set(json.loads((tmp_path / "manifest.json").read_text())) == {"m.onnx", "openvino", "w.pt"}
    (tmp_path / "m.onnx").write_bytes(b"other")
    update_manifest(tmp_path, "prune", {"files": ["p.pt", "m.onnx"]})       # rewrote m.onnx: older records are stale
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert set(m) == {"p.pt", "openvino"} and m["p.pt"]["stage"] == "prune"
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="corrupt"):
        update_manifest(tmp_path, "x", {})


def test_unwritable_output_folder_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArtifactError, match="cannot create output folder"):
        ensure_dir(blocker / "out")


@pytest.mark.parametrize(("make", "needle"), [
    (lambda t: "", "--out is empty"),
    (lambda t: (t / "f").write_text("") or t / "f" / "sub" / "deeper", "is a file"),
    (lambda t: (t / "dangling").symlink_to(t / "nowhere") or t / "dangling", "dangling symlink"),
    (lambda t: (t / "f2").write_text("") or t / "f2", "exists and is not a folder"),
])
def test_output_folder_is_checked_before_any_work(tmp_path, make, needle) -> None:
    from edgedeploy._io import check_output_folder

    with pytest.raises(ArtifactError, match=needle):
        check_output_folder(make(tmp_path))
    assert check_output_folder(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()                    # checked, nothing created
