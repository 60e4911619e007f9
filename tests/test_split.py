"""Splitting the gaze model: the network runs on the MyriadX (a real offline blob), the grid_sample warp on the host."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgedeploy.errors import ArtifactError, ConfigError, UnsupportedOpError
from edgedeploy.export.blob import BlobConfig, export_blob
from edgedeploy.export.myriad_ops import check_myriad_ops
from edgedeploy.export.onnx import OnnxConfig, export_onnx
from edgedeploy.export.split import SplitConfig, split_model
from edgedeploy.zoo.gaze import EyeWarpNet, GazeCorrector, make_pairs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _gaze() -> GazeCorrector:
    torch.manual_seed(0)
    net = EyeWarpNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.2)          # a fresh head is the identity warp: make the flow non-trivial
    return GazeCorrector(net).eval()


@pytest.fixture(scope="module")
def samples():
    x = make_pairs(3, seed=21).inputs
    return [x[i:i + 1] for i in range(3)]


@pytest.fixture(scope="module", params=["torchscript", "dynamo"])
def gaze_onnx(request, tmp_path_factory, samples):
    exporter = request.param
    out = tmp_path_factory.mktemp(exporter)
    result = export_onnx(_gaze(), torch.from_numpy(samples[0]),
                         OnnxConfig(exporter=exporter, opset=16 if exporter == "torchscript" else None), out=out,
                         name="gaze")
    return result.path


def _producers(model: onnx.ModelProto) -> dict[str, str]:
    return {o: n.op_type for n in model.graph.node for o in n.output}


def test_split_puts_the_network_on_the_device_and_the_warp_on_the_host(gaze_onnx, samples, tmp_path):
    with pytest.raises(UnsupportedOpError, match="GridSample"):
        check_myriad_ops(onnx.load(str(gaze_onnx)), gaze_onnx)           # why the split is needed
    result = split_model(gaze_onnx, out=tmp_path, eval_data=samples)
    assert "GridSample" not in result.device_ops and result.host_ops["GridSample"] == 2
    assert result.device_ops["Conv"] == 26 and "Conv" not in result.host_ops
    device = onnx.load(str(result.device))
    check_myriad_ops(device, result.device)                               # the device part is all MyriadX ops
    made_by = _producers(device)
    assert sorted(made_by[t] for t in result.device_outputs) == ["Softmax", "Softmax", "Tanh", "Tanh"]
    assert result.transfer_bytes == 4 * 2 * 48 * 64 * 2                  # flow + brightness of two eyes, FP16
    assert result.host_inputs[0] == "input"                               # grey channels are re-sliced on the host
    assert result.parity.max_abs <= 1e-4                                  # device -> host == the original
    assert result.fp16_transfer_max_abs < 0.5                             # grey levels, after FP16 transfer
    assert result.host_latency_ms is not None and 0 < result.host_latency_ms < 5
    assert result.device.is_file() and result.host.is_file()


def test_host_side_coordinates_survive_fp16_transfer_better(gaze_onnx, samples, tmp_path):
    pulled = split_model(gaze_onnx, SplitConfig(benchmark_repeats=0), out=tmp_path / "a", eval_data=samples)
    naive = split_model(gaze_onnx, SplitConfig(pull="none", benchmark_repeats=0), out=tmp_path / "b",
                        eval_data=samples)
    assert set(naive.host_ops) == {"GridSample", "Mul", "Add", "Slice", "Concat"}     # just the warp and blend
    assert naive.fp16_transfer_max_abs > 2 * pulled.fp16_transfer_max_abs          # FP16 grid vs FP16 flow
    assert naive.parity.max_abs <= 1e-4 and naive.host_latency_ms is None


def test_any_op_set_can_be_moved_to_the_host(gaze_onnx, samples, tmp_path):
    cfg = SplitConfig(unsupported=frozenset({"GridSample", "Softmax"}), benchmark_repeats=0)
    result = split_model(gaze_onnx, cfg, out=tmp_path, eval_data=samples)
    assert "Softmax" in result.host_ops and "Softmax" not in result.device_ops
    assert result.parity.max_abs <= 1e-4


@pytest.mark.slow
def test_device_part_compiles_to_a_real_blob(gaze_onnx, samples, tmp_path):
    from edgedeploy.export.myriad_toolchain import ensure_toolchain

    ensure_toolchain(quiet=True)
    split = split_model(gaze_onnx, SplitConfig(benchmark_repeats=0), out=tmp_path, eval_data=samples)
    blob = export_blob(split.device, BlobConfig(shaves=6, cmx_slices=6), out=tmp_path)
    info = blob.details["blob"]
    assert blob.path.stat().st_size > 100_000 and info["shaves"] == 6
    assert info["inputs"] == {"input": {"shape": [1, 4, 48, 64], "dtype": "FP32"}}
    assert {n: v["shape"] for n, v in info["outputs"].items()} == {t: [1, 2, 48, 64] for t in split.device_outputs}


def test_errors(tmp_path, samples):
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Conv2d(4, 2, 3), (torch.zeros(1, 4, 8, 8),), str(plain), dynamo=False, opset_version=13)
    with pytest.raises(ConfigError, match="every op is supported"):
        split_model(plain, out=tmp_path)
    with pytest.raises(ArtifactError, match="does not exist"):
        split_model(tmp_path / "missing.onnx")
    with pytest.raises(ConfigError, match="pull"):
        SplitConfig(pull="everything")
    x = np.zeros((1, 4, 48, 64), np.float32)
    with pytest.raises(ConfigError, match="1 array"):
        split_model(plain, SplitConfig(unsupported=frozenset({"Conv"})), out=tmp_path, eval_data=[(x, x)])


@pytest.mark.slow
def test_export_blob_host_fallback_ships_blob_and_host_part(gaze_onnx, tmp_path):
    """Without host_fallback the blob step refuses GridSample; with it, one call gives both parts, verified."""
    from edgedeploy.export.myriad_toolchain import ensure_toolchain

    ensure_toolchain(quiet=True)
    with pytest.raises(UnsupportedOpError, match="host_fallback=True"):
        export_blob(gaze_onnx, BlobConfig(shaves=4, cmx_slices=4), out=tmp_path / "refused", name="gaze")
    res = export_blob(gaze_onnx, BlobConfig(shaves=4, cmx_slices=4, host_fallback=True), out=tmp_path / "ok",
                      name="gaze")
    names = sorted(p.name for p in (tmp_path / "ok").iterdir())
    assert names == ["gaze_4shave.blob", "gaze_host.onnx", "gaze_myriad.onnx", "manifest.json"]
    split = res.details["split"]
    assert split["host"] == "gaze_host.onnx" and split["host_ops"]["GridSample"] == 2
    assert split["parity"]["max_abs"] <= 1e-4 and res.details["blob"]["stages"] > 10
    assert any("run on the host" in w for w in res.warnings)


@pytest.mark.slow
def test_cli_check_points_to_the_host_fallback_and_export_uses_it(tmp_path, capsys):
    """check names the fix (--host-fallback); export --to blob --host-fallback ships both parts from the zoo model."""
    from edgedeploy.cli import main

    assert main(["check", "gaze", "--input", "1x4x48x64", "--target", "myriadx", "--json",
                 str(tmp_path / "c.json")]) == 1                                      # 1: a verdict failed
    import json

    ops = next(v for v in json.loads((tmp_path / "c.json").read_text())["verdicts"] if v["name"] == "ops")
    assert ops["status"] == "FAIL" and "export --to blob --host-fallback" in ops["message"]
    # the ONNX succeeds, the blob is refused: all or nothing, so nothing is left in --out
    assert main(["export", "gaze", "--input", "1x4x48x64", "--to", "onnx,blob", "--out",
                 str(tmp_path / "refused")]) == 2
    assert "host_fallback" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    assert main(["export", "gaze", "--input", "1x4x48x64", "--to", "onnx,blob", "--host-fallback", "--shaves", "4",
                 "--out", str(tmp_path / "ok")]) == 0
    names = {p.name for p in (tmp_path / "ok").iterdir()}
    assert {"gaze_4shave.blob", "gaze_host.onnx", "gaze_myriad.onnx", "gaze.onnx", "manifest.json"} == names
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    assert {"gaze.onnx", "gaze_4shave.blob"} <= set(manifest)
    from edgedeploy._io import sha256_file

    blob = manifest["gaze_4shave.blob"]
    assert blob["sha256"]["gaze_4shave.blob"] == sha256_file(tmp_path / "ok" / "gaze_4shave.blob")
    assert str(tmp_path / "ok") in blob["source"]["path"] and ".edgedeploy" not in blob["source"]["path"]
