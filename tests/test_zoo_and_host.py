"""The zoo registry, the real digits data, and host information for benchmarks."""
from __future__ import annotations

import pytest

from edgedeploy import zoo
from edgedeploy.errors import ModelLoadError, ShapeError
from edgedeploy.metrics.hostinfo import SPEED_FLAGS, host_info
from edgedeploy.modelref import load_model, parse_shape


def test_zoo_lists_and_creates() -> None:
    assert {"digits-cnn", "resnet18", "resnet50", "mobilenetv2"} <= set(zoo.available())
    assert zoo.create("resnet18", num_classes=7).fc.out_features == 7
    with pytest.raises(ModelLoadError, match="available"):
        zoo.create("nope")


def test_digits_are_real_and_the_cnn_learns_them(digits_data, trained_digits_cnn) -> None:
    from edgedeploy.zoo.digits import accuracy

    assert len(digits_data.x_train) + len(digits_data.x_test) == 1797
    assert digits_data.x_train.shape[1:] == (1, 16, 16)
    assert accuracy(trained_digits_cnn, digits_data.x_test, digits_data.y_test) >= 97.0


def test_model_refs_and_shapes(tmp_path) -> None:
    assert parse_shape("1x3x224x224") == (1, 3, 224, 224) == parse_shape("1,3,224,224")
    for bad in ("1x3xax4", "", "1x0x2"):
        with pytest.raises(ShapeError):
            parse_shape(bad)
    assert load_model("resnet18").fc.out_features == 1000
    with pytest.raises(ModelLoadError, match="cannot import module"):
        load_model("no_such_pkg.models:build")
    with pytest.raises(ModelLoadError, match="has no attribute"):
        load_model("edgedeploy.zoo.reference:NoSuchModel")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing.onnx"))
    with pytest.raises(ModelLoadError, match="unknown model"):
        load_model("not-a-zoo-name")


def test_host_info_reads_flags() -> None:
    h = host_info()
    assert h.cores >= 1 and h.cpu_model
    assert set(h.flags) <= set(SPEED_FLAGS)
    assert h.int8_accel in {"amx_int8", "vnni", "none"} and h.cpu_model in str(h)
