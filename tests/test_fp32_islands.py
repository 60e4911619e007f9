"""FP32 islands: an FP16 OpenVINO IR of a grid_sample warp passes parity once its coordinate path stays FP32."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgedeploy.errors import ConfigError, ParityError, ShapeError
from edgedeploy.export.fp32_islands import IslandsConfig, find_islands, keep_fp32_islands
from edgedeploy.frames import camera_frames
from edgedeploy.zoo.gaze import EyeWarpNet, GazeCorrector, make_pairs

sys.path.insert(0, str(Path(__file__).parent))
from _export_models import flow_warp  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def _gaze(seed: int = 0) -> GazeCorrector:
    """The gaze corrector with a seeded random flow head (a fresh one is the identity warp)."""
    torch.manual_seed(seed)
    net = EyeWarpNet()
    with torch.no_grad():
        net.head.weight.normal_(0.0, 0.2)
    return GazeCorrector(net).eval()


def _gaze_inputs() -> list[np.ndarray]:
    pairs = make_pairs(2, seed=11).inputs
    frames = camera_frames(2, 48, 64, 3, order="RGB", layout="NCHW").astype(np.float32)   # real photos: sharp edges
    photo = np.stack([frames[:, 0], np.full((2, 48, 64), 12.0, np.float32), frames[:, 1],
                      np.full((2, 48, 64), 15.0, np.float32)], 1)
    return [pairs[0:1], pairs[1:2], photo[0:1], photo[1:2]]


@pytest.fixture(scope="module")
def gaze_ov(tmp_path_factory):
    import openvino as ov

    path = tmp_path_factory.mktemp("gaze") / "gaze.onnx"
    torch.onnx.export(_gaze(), (torch.from_numpy(_gaze_inputs()[0]),), str(path), dynamo=False, opset_version=16,
                      input_names=["eyes"], output_names=["corrected"])
    return ov.convert_model(str(path))


@pytest.fixture(scope="module")
def flow_warp_ov():
    import openvino as ov

    return ov.convert_model(flow_warp(), example_input=torch.zeros(1, 3, 96, 160),
                            input=[ov.PartialShape([1, 3, 96, 160])])


def _flow_warp_inputs() -> list[np.ndarray]:
    frames = camera_frames(2, 96, 160, 3, order="RGB", layout="NCHW").astype(np.float32)
    noise = (np.random.default_rng(0).random((1, 3, 96, 160)) * 255).astype(np.float32)
    return [frames[0:1], frames[1:2], noise]


def test_gaze_ir_keeps_the_sampling_path_fp32_and_gets_closer(gaze_ov):
    result = keep_fp32_islands(gaze_ov, _gaze_inputs())
    assert result.passed and result.rounds == 1                      # the network itself stays FP16
    assert sum("GridSample" in op.get_type_name() for op in result.model.get_ordered_ops()
               if op.get_friendly_name() in result.kept) == 2
    assert result.err_after < 0.6 * result.err_before                 # FP16 grid constants were the main error
    assert result.err_after < 2e-3 and result.inputs_checked == 4
    kinds = {op.get_friendly_name(): op.get_type_name() for op in result.model.get_ordered_ops()}
    assert "Convolution" not in {kinds[n] for n in result.kept}
    assert result.to_dict()["passed"] is True


def test_saved_fp16_ir_really_keeps_the_island_constants_in_f32(gaze_ov, tmp_path):
    import openvino as ov

    result = keep_fp32_islands(gaze_ov, _gaze_inputs()[:2])
    xml = tmp_path / "gaze16.xml"
    ov.save_model(result.model, str(xml), compress_to_fp16=True)
    ir = ov.Core().read_model(str(xml))
    consts = {op.get_friendly_name(): op for op in ir.get_ordered_ops() if op.get_type_name() == "Constant"}
    float_islands = [n for n in result.constants if result_type(result.model, n).is_real()]
    assert float_islands, "the island should hold float constants (the folded sampling grid)"
    for name in float_islands:
        assert name in consts and str(consts[name].get_element_type()) == "<Type: 'float32'>", name
        assert f"{name}_compressed" not in consts
    f16 = [n for n, op in consts.items() if str(op.get_element_type()) == "<Type: 'float16'>"]
    assert len(f16) >= 20                                                 # conv weights: compressed as asked
    text = xml.read_text()
    assert text.count('name="DisablePrecisionConversion"') >= len(result.kept)


def result_type(model, name):
    return next(op.get_output_element_type(0) for op in model.get_ordered_ops() if op.get_friendly_name() == name)


def test_flow_warp_fails_fp16_today_and_passes_with_a_grown_island(flow_warp_ov):
    result = keep_fp32_islands(flow_warp_ov, _flow_warp_inputs())
    assert result.err_before > 0.02 and result.max_abs_before > 4.0      # the known failure: several grey levels
    assert result.passed and result.err_after <= 1e-2
    # its flow network reads raw 0-255 pixels: FP16 conv weights move the flow too, so the island grows
    assert result.rounds == 3 and result.history[-1] <= 1e-2 < result.history[0]
    kinds = {op.get_friendly_name(): op.get_type_name() for op in flow_warp_ov.get_ordered_ops()}
    assert {kinds[n] for n in result.kept} >= {"GridSample", "Convolution", "Tanh"}


def test_cpu_plugin_honours_the_islands_at_bf16(flow_warp_ov):
    result = keep_fp32_islands(flow_warp_ov, _flow_warp_inputs()[:2], IslandsConfig(precision_hint="bf16"))
    assert result.err_before > 0.1                                      # bf16 sampling coordinates: unusable
    assert result.passed


def test_find_islands_stops_at_learned_layers(gaze_ov):
    ops, consts = find_islands(gaze_ov)
    kinds = {op.get_type_name() for op in ops}
    assert "GridSample" in kinds and not kinds & {"Convolution", "Parameter"}
    deeper, _ = find_islands(gaze_ov, depth=1)
    assert len(deeper) > len(ops) and "Convolution" in {op.get_type_name() for op in deeper}


def test_errors(flow_warp_ov):
    with pytest.raises(ParityError, match="precision='fp32'"):
        keep_fp32_islands(flow_warp_ov, _flow_warp_inputs()[:1], IslandsConfig(max_rounds=1))
    with pytest.raises(ConfigError, match="openvino.Model"):
        keep_fp32_islands(flow_warp(), _flow_warp_inputs())
    with pytest.raises(ShapeError, match="1 input"):
        keep_fp32_islands(flow_warp_ov, [(np.zeros((1, 3, 96, 160), np.float32),) * 2])
    with pytest.raises(ConfigError, match="eval_data"):
        keep_fp32_islands(flow_warp_ov, [])
    with pytest.raises(ConfigError, match="rtol"):
        IslandsConfig(rtol=0.0)
