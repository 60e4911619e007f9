"""Runtime sessions: a contract suite run by every registered backend, plus loading errors."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from edgedeploy.errors import ArtifactError, ConfigError, ShapeError
from edgedeploy.metrics.latency import LatencyStats
from edgedeploy.runtime import Session, TensorInfo, available_runtimes, benchmark, get_runtime, load


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyNet().eval()
    x = torch.randn(2, 3, 12, 12)
    folder = tmp_path_factory.mktemp("rt")
    onnx_path = folder / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(onnx_path), dynamo=False, input_names=["image"], output_names=["logits"],
                          opset_version=17)
    import openvino as ov

    xml_path = folder / "tiny.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    with torch.no_grad():
        ref = model(x).numpy()
    return {"model": model, "x": x, "ref": ref, ".onnx": onnx_path, ".xml": xml_path}


def _open(name: str, tiny: dict, **kw) -> Session:
    """Open backend ``name`` on the first source kind it declares (module, .onnx, .xml)."""
    cls = get_runtime(name)
    for suffix in cls.suffixes:
        if suffix == "module":
            return load(tiny["model"], runtime=name, example_inputs=(tiny["x"],), **kw)
        if suffix in tiny:
            return load(tiny[suffix], runtime=name, **kw)
    pytest.fail(f"backend {name} reads none of the sources this suite can build: {cls.suffixes}")


RUNTIMES = available_runtimes()
ATOL = {"fp32": 1e-4, "fp16": 2e-3}     # by the precision a backend computes float graphs in


def _atol(name: str) -> float:
    return ATOL[get_runtime(name).float_precision]


@pytest.mark.parametrize("name", RUNTIMES)
class TestContract:
    def test_run_matches_torch_with_numpy_and_torch_inputs(self, name, tiny):
        s = _open(name, tiny)
        for inp in (tiny["x"], tiny["x"].numpy(), [tiny["x"]], {s.inputs[0].name: tiny["x"]}):
            out = s.run(inp)
            assert isinstance(out, list) and all(isinstance(o, np.ndarray) for o in out)
            assert out[0].shape == (2, 5)
            assert np.abs(out[0] - tiny["ref"]).max() < _atol(name)

    def test_inputs_outputs_info(self, name, tiny):
        s = _open(name, tiny)
        assert len(s.inputs) == 1 and len(s.outputs) == 1
        info = s.inputs[0]
        assert isinstance(info, TensorInfo)
        nm, shape, dtype = info
        assert isinstance(nm, str) and shape == (2, 3, 12, 12) and dtype == "float32"
        assert s.outputs[0].shape == (2, 5) and s.outputs[0].dtype == "float32"
        assert s.name == name

    def test_wrong_shape_names_input_expected_and_given(self, name, tiny):
        s = _open(name, tiny)
        with pytest.raises(ShapeError) as err:
            s.run(torch.randn(2, 3, 10, 12))
        msg = str(err.value)
        assert repr(s.inputs[0].name) in msg and "2x3x12x12" in msg and "2x3x10x12" in msg

    def test_wrong_dtype_and_count(self, name, tiny):
        s = _open(name, tiny)
        with pytest.raises(ShapeError, match="float32.*float64"):
            s.run(tiny["x"].double())
        with pytest.raises(ShapeError, match="expects 1 input"):
            s.run([tiny["x"], tiny["x"]])
        with pytest.raises(ShapeError, match="missing"):
            s.run({"nope": tiny["x"]})

    def test_benchmark_and_threads(self, name, tiny):
        s = _open(name, tiny, threads=2)
        stats = benchmark(s, tiny["x"], threads=1, repeats=5, warmup=1)
        assert isinstance(stats, LatencyStats)
        assert stats.repeats == 5 and stats.threads == 1 and stats.batch == 2
        assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms and stats.fps > 0
        assert benchmark(s, repeats=3, warmup=0).threads == 2       # random inputs from the signature
        one = s.reopen(1)
        assert one.threads == 1 and np.abs(one.run(tiny["x"])[0] - tiny["ref"]).max() < _atol(name)

    def test_unknown_option_and_bad_threads(self, name, tiny):
        with pytest.raises(ConfigError, match="unknown"):
            _open(name, tiny, colour="blue")
        with pytest.raises(ConfigError, match="threads"):
            _open(name, tiny, threads=0)


def test_runtime_chosen_from_file_type(tiny):
    assert load(tiny[".onnx"]).name == "onnxruntime"
    assert load(tiny[".xml"]).name == "openvino"
    assert load(tiny["model"]).name == "torch"
    assert load(tiny[".onnx"], runtime="openvino").name == "openvino"
    assert {"torch", "onnxruntime", "openvino"} <= set(RUNTIMES)


def test_unknown_runtime_lists_valid_names(tiny):
    with pytest.raises(ConfigError) as err:
        load(tiny[".onnx"], runtime="tensorrt")
    assert "tensorrt" in str(err.value) and all(n in str(err.value) for n in RUNTIMES)


def test_torch_without_example_has_open_signature(tiny):
    s = load(tiny["model"])
    assert s.inputs == [] and s.outputs == []
    assert np.abs(s.run(tiny["x"])[0] - tiny["ref"]).max() == 0
    with pytest.raises(ShapeError, match="unknown shape"):
        s.example_inputs()


@pytest.mark.parametrize("suffix", [".onnx", ".xml"])
def test_missing_empty_corrupt_files(tmp_path, suffix):
    with pytest.raises(ArtifactError, match="does not exist"):
        load(tmp_path / f"nope{suffix}")
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty"):
        load(empty)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"\x08\x07garbage, not a model" * 10)
    if suffix == ".xml":
        bad.with_suffix(".bin").write_bytes(b"\0" * 16)
    with pytest.raises(ArtifactError, match="corrupt"):
        load(bad)


def test_xml_without_bin_and_unknown_suffix(tmp_path, tiny):
    xml = tmp_path / "lonely.xml"
    xml.write_text(tiny[".xml"].read_text())
    with pytest.raises(ArtifactError, match=r"lonely\.bin"):
        load(xml)
    other = tmp_path / "m.tflite2"
    other.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="no runtime reads"):
        load(other)
    with pytest.raises(ConfigError, match="torch runtime runs an nn.Module"):
        load(tiny[".onnx"], runtime="torch")


def test_import_stays_cheap():
    code = ("import sys, edgedeploy, edgedeploy.runtime as r; r.available_runtimes(); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'openvino') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_rows_runs_a_fixed_batch_export_over_many_rows(tiny, tmp_path):
    from edgedeploy.errors import ShapeError

    path = tmp_path / "one.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tiny["model"], (tiny["x"][:1],), str(path), dynamo=False, opset_version=17)
    x = torch.randn(5, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    session = load(path)
    with torch.no_grad():
        ref = tiny["model"](x).numpy()
    got = session.run_rows(x.numpy())
    assert got.shape == (5, 5) and np.allclose(got, ref, atol=1e-4)
    assert not np.allclose(got[0], got[1])                       # every row is its own input
    with pytest.raises(ShapeError, match="non-empty batch"):
        session.run_rows(np.zeros((0, 3, 12, 12), np.float32))
