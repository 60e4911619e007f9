"""Bad input and silent-wrong-result cases through the Python API: each is a clear EdgeDeployError, or the
right answer where the tool used to be silently wrong."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from edgedeploy.errors import (ArtifactError, CalibrationError, ConfigError, EdgeDeployError, ModelLoadError,
                               ModelRunError, ShapeError, UnsupportedOpError)


class _Conv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x" * 200, ""])
def test_artifact_names_stay_inside_out(tmp_path, name):
    from edgedeploy.export.onnx import export_onnx

    with pytest.raises(ConfigError, match="not a plain file name"):
        export_onnx(_Conv().eval(), torch.zeros(1, 3, 8, 8), out=tmp_path / "out", name=name)
    assert not (tmp_path / "evil.onnx").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("shape", [(1, -3, 8, 8), (0, 3, 8, 8), (1, 3, 100000, 100000), (1.5, 3), ()])
def test_profile_refuses_bad_shapes_without_allocating(shape):
    from edgedeploy.metrics.profile import profile

    with pytest.raises(ShapeError):
        profile(_Conv(), shape)


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -1.0, 0])
def test_nan_and_nonpositive_fps_are_refused(fps):
    from edgedeploy.metrics.profile import profile
    from edgedeploy.targets.check import check

    with pytest.raises(ConfigError, match="fps must be > 0"):
        profile(_Conv(), (1, 3, 8, 8), fps=fps)
    with pytest.raises(ConfigError, match="fps must be > 0"):
        check(_Conv(), "cpu", input_shape=(1, 3, 8, 8), fps=fps)


def test_user_code_that_exits_is_an_error_not_an_exit():
    from edgedeploy.metrics.profile import profile
    from edgedeploy.modelref import load_model

    with pytest.raises(ModelLoadError, match="sys.exit"):
        load_model("builtins:exit")

    class Exits(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sys.exit(4)

    with pytest.raises(ModelRunError, match=r"sys.exit\(4\)"):
        profile(Exits(), (1, 3, 8, 8))


def test_forward_returning_none_is_named(tmp_path):
    from edgedeploy.export.onnx import export_onnx

    class Nothing(nn.Module):
        def forward(self, x: torch.Tensor) -> None:
            return None

    with pytest.raises(ModelRunError, match="returned NoneType"):
        export_onnx(Nothing(), torch.zeros(1, 3, 8, 8), out=tmp_path)


def test_local_module_never_shadows_an_installed_package(tmp_path, monkeypatch):
    """A stray ./onnx.py in the project folder must not replace the real onnx package mid-export."""
    from edgedeploy.modelref import load_model

    (tmp_path / "onnx.py").write_text("raise RuntimeError('the stray onnx.py was imported')\n")
    (tmp_path / "proj_models.py").write_text(textwrap.dedent("""
        import torch
        def build():
            return torch.nn.Conv2d(3, 4, 3)
    """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "proj_models", raising=False)
    model = load_model("proj_models:build")
    import onnx  # noqa: F401 - resolves to the installed package, not ./onnx.py

    assert "site-packages" in sys.modules["onnx"].__file__
    assert isinstance(model, nn.Conv2d)
    sys.modules.pop("proj_models", None)


def test_pickled_modules_need_the_explicit_opt_in(tmp_path):
    from edgedeploy.modelfile import save_model_file
    from edgedeploy.modelref import load_model

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ModelLoadError, match="trust_pickle"):
        load_model(str(tmp_path / "evil.pt"))
    assert not marker.exists()                           # nothing ran
    saved = save_model_file(_Conv().eval(), tmp_path / "ok.pt", source=None)
    with pytest.raises(ModelLoadError, match="does not name the model"):
        load_model(str(saved))
    from edgedeploy.zoo.digits import DigitsCNN

    torch.save(DigitsCNN(), tmp_path / "whole.pt")
    assert isinstance(load_model(str(tmp_path / "whole.pt"), trust_pickle=True), DigitsCNN)


def test_pruned_model_round_trips_weights_only(tmp_path):
    from edgedeploy.compress.prune import PruneConfig, prune
    from edgedeploy.modelref import load_model
    from edgedeploy.zoo.digits import DigitsCNN

    x = torch.rand(1, 1, 16, 16)
    torch.manual_seed(0)
    result = prune(DigitsCNN().eval(), PruneConfig(amount=0.5), x, progress=False, out=tmp_path, source="digits-cnn")
    back = load_model(str(tmp_path / "model.pt"))           # weights_only, rebuilt from the zoo factory
    with torch.no_grad():
        assert torch.equal(back(x), result.model(x))
    assert back.stem[0].out_channels == 8


def test_data_from_an_image_folder_a_dataloader_and_bad_files(tmp_path):
    from PIL import Image

    from edgedeploy.data import ImageConfig, batches, load_npy, resolve

    for cls in ("cats", "dogs"):
        (tmp_path / "img" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / "img" / cls / f"{i}.png")
    x, y = resolve(str(tmp_path / "img"), (1, 3, 16, 16), images=ImageConfig(mean=(0.0,), scale=(255.0,)))
    assert x.shape == (6, 3, 16, 16) and x.dtype == np.float32 and list(y) == [0, 0, 0, 1, 1, 1]
    assert 0.0 <= x.min() and x.max() <= 1.0
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.rand(10, 3, 4, 4),
                                                                         torch.randint(0, 2, (10,))), batch_size=4)
    got = batches(loader, "calibration")
    assert [len(b) for b in got] == [4, 4, 2] and got[0].labels is not None
    np.save(tmp_path / "nan.npy", np.array([[np.nan]], np.float32))
    with pytest.raises(CalibrationError, match="NaN"):
        load_npy(tmp_path / "nan.npy")
    with pytest.raises(CalibrationError, match="holds no images"):
        (tmp_path / "none").mkdir()
        resolve(str(tmp_path / "none"), (1, 3, 8, 8))


def test_target_file_figures_win_over_the_host_block(tmp_path):
    from edgedeploy.targets.target import PROFILES_DIR, Target

    cpu = (PROFILES_DIR / "cpu.yaml").read_text()
    mine = tmp_path / "board.yaml"
    mine.write_text(cpu.replace("name: cpu", "name: board\ndescription: my board\nprecisions: [fp32]\n"
                                              "peak_ops_per_s: {fp32: 2.0e9}\nmemory_bandwidth_gbps: 3.0\n"
                                              "memory_bytes: 1000000"))
    t = Target.load(mine)
    assert t.peak_ops_per_s["fp32"] == 2.0e9 and t.memory_bandwidth_gbps == 3.0 and t.memory_bytes == 1_000_000
    assert t.description == "my board" and "peak_ops_per_s" in t.extras["from_file"]


def test_fp16_range_verdict_fails_a_model_that_overflows():
    from edgedeploy.targets.check import check

    class Loud(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            with torch.no_grad():
                self.conv.weight.fill_(3e4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    report = check(Loud(), "myriadx", input_shape=(1, 3, 8, 8))
    v = report["fp16 range"]
    assert v.passed is False and "overflow fp16" in v.message and "conv" in v.message and not report.passed
    quiet = check(_Conv(), "myriadx", input_shape=(1, 3, 8, 8))["fp16 range"]
    assert quiet.passed is True and quiet.measured < 100


def test_quantization_report_measures_every_output_and_flags_poor_results(tmp_path):
    from edgedeploy.compress.quantize import QuantConfig, quantize

    class TwoHeads(nn.Module):
        """One head is well-behaved; the other reads a channel 10,000x louder than the rest."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Conv2d(3, 8, 3, padding=1)
            self.calm = nn.Conv2d(8, 4, 1)
            self.loud = nn.Conv2d(8, 4, 1)
            with torch.no_grad():
                self.body.weight[0] *= 1e4

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = torch.relu(self.body(x))
            return self.calm(h[:, 1:].sum(1, keepdim=True).expand(-1, 8, -1, -1)), self.loud(h)

    torch.manual_seed(0)
    calib = torch.rand(32, 3, 8, 8)
    result = quantize(TwoHeads().eval(), QuantConfig(per_channel=False), calibration=calib, out=tmp_path)
    names = [o.name for o in result.report.outputs]
    assert names == ["output0", "output1"]                  # every output, not only the first
    warn = [n for n in result.report.notes if n.startswith("WARNING poor quantization")]
    assert warn and "keep_float" in warn[0] and "lowest-SQNR layers" in warn[0]


def test_traced_branch_is_refused_and_varied_parity_catches_baked_values(tmp_path):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.errors import ParityError

    class Gate(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.mean() > 0:
                return x * 2
            return x - 1

    for exporter in ("torchscript", "dynamo"):
        with pytest.raises(UnsupportedOpError, match=r"data-dependent control flow in <root> \(Gate\)"):
            export_onnx(Gate(), torch.ones(1, 3, 4, 4), OnnxConfig(exporter=exporter), out=tmp_path / exporter)

    class Baked(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * float(x.abs().max())              # a value the tracer freezes as a constant

    with pytest.raises((ParityError, UnsupportedOpError)):
        export_onnx(Baked(), torch.ones(1, 3, 4, 4), OnnxConfig(exporter="torchscript"), out=tmp_path / "b")
    res = export_onnx(Gate(), torch.ones(1, 3, 4, 4), OnnxConfig(exporter="torchscript", allow_data_dependent=True),
                      out=tmp_path / "allowed")
    assert any("only the branches the example took" in w for w in res.warnings)


def test_openvino_ir_takes_what_the_model_takes_by_default(tmp_path):
    from edgedeploy.export.openvino import OpenVinoConfig, export_openvino
    from edgedeploy.runtime import load

    model = _Conv().eval()
    x = torch.randn(1, 3, 8, 8)
    res = export_openvino(model, OpenVinoConfig(precision="fp32"), out=tmp_path, example_inputs=x)
    session = load(res.path)
    assert session.inputs[0].dtype == "float32"               # not u8: feeding floats gives the right answer
    with torch.no_grad():
        assert np.abs(session.run(x.numpy())[0] - model(x).numpy()).max() < 1e-4
    assert set(res.parity.checked) == {"the example", "random", "photos"}


def test_errors_carry_builtin_types():
    assert issubclass(ArtifactError, OSError) and issubclass(ConfigError, ValueError)
    assert issubclass(ModelRunError, EdgeDeployError)
