"""Bad input on the command line: one line naming the thing at fault and the fix, exit 2, no traceback,
nothing left in --out. Each case is what a new user really typed or had on disk."""
from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest
import torch

from edgedeploy.cli import main

DIGITS = ["digits-cnn", "--input", "1x1x16x16"]

USER_MODELS = textwrap.dedent('''
    import sys
    import torch
    import torch.nn.functional as F

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        def forward(self, x):
            return self.conv(x)

    class Exits(torch.nn.Module):
        def forward(self, x):
            sys.exit(0)

    class ReturnsNone(torch.nn.Module):
        def forward(self, x):
            x * 2

    class Gate(torch.nn.Module):
        def forward(self, x):
            if x.mean() > 0:
                return x * 2
            return x - 1

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 1)
            self.gate = Gate()
        def forward(self, x):
            return self.gate(self.conv(x))

    def plain():
        return Plain()

    def exits():
        return Exits()

    def none():
        return ReturnsNone()

    def branchy():
        return Branchy()

    def raises():
        raise RuntimeError("weights file missing")

    def number():
        return 42

    def quits():
        sys.exit(3)
''')


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A user's folder: their model module and the broken files they have lying around."""
    root = tmp_path_factory.mktemp("badinput")
    (root / "userm.py").write_text(USER_MODELS)
    (root / "broken.onnx").write_bytes(b"not a protobuf \x00\xff" * 20)
    (root / "empty.onnx").write_bytes(b"")
    (root / "text.npy").write_text("1,2,3\n4,5,6\n")
    np.save(root / "nan.npy", np.full((4, 1, 16, 16), np.nan, np.float32))
    np.save(root / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(root / "wrongshape.npy", np.zeros((8, 3, 5, 5), np.float32))
    (root / "random.pt").write_bytes(os.urandom(256))
    from edgedeploy.zoo.digits import DigitsCNN

    torch.save(DigitsCNN(), root / "pickled.pt")
    torch.save(DigitsCNN().state_dict(), root / "state.pt")
    (root / "empty_dir").mkdir()
    (root / "notes.txt").write_text("x")
    (root / "link.json").symlink_to(root / "notes.txt")
    (root / "jsondir").mkdir()
    (root / "bad.yaml").write_text("name: x\ndescription: [unclosed\n")
    (root / "dangling").symlink_to(root / "nowhere")
    from edgedeploy.zoo.minilm import model_dir

    more = root / "morelayers"                  # config asks for 8 layers, the weights hold 6
    more.mkdir()
    cfg = json.loads((model_dir() / "config.json").read_text())
    (more / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 8}))
    (more / "model.safetensors").symlink_to(model_dir() / "model.safetensors")
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h", "w"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), root / "dyn.onnx")
    return root


def _cases():
    """(id, argv with {ws} placeholders, text the one line must contain)."""
    out = ["--out", "{ws}/out"]
    return [
        ("unknown-option", ["profile", "digits-cnn", "--bogus"], "No such option: --bogus"),
        ("missing-argument", ["profile"], "Missing argument"),
        ("not-a-number", ["profile", *DIGITS, "--top", "abc"], "--top"),
        ("fps-nan", ["profile", *DIGITS, "--fps", "nan"], "fps"),
        ("fps-negative", ["check", *DIGITS, "--target", "cpu", "--fps", "-5"], "fps must be > 0"),
        ("fps-inf", ["check", *DIGITS, "--target", "cpu", "--fps", "inf"], "fps must be > 0"),
        ("shape-letters", ["profile", "digits-cnn", "--input", "1x1xAx16"], "cannot parse input shape"),
        ("shape-negative", ["profile", "digits-cnn", "--input", "1x-1x16x16"], "zero or negative"),
        ("shape-zero", ["profile", "digits-cnn", "--input", "0x1x16x16"], "zero or negative"),
        ("shape-huge", ["profile", "digits-cnn", "--input", "1x3x100000x100000"], "elements"),
        ("unknown-zoo", ["profile", "no-such-net", "--input", "1x3x8x8"], "unknown model 'no-such-net'"),
        ("factory-import", ["profile", "nouserm.models:build", "--input", "1x3x8x8"], "cannot import module"),
        ("factory-attr", ["profile", "userm:missing", "--input", "1x3x8x8"], "has no attribute 'missing'"),
        ("factory-malformed", ["profile", "userm:a:b", "--input", "1x3x8x8"], "package.module:factory"),
        ("factory-builtins-exit", ["profile", "builtins:exit", "--input", "1x3x8x8"], "sys.exit"),
        ("factory-sys-exit", ["profile", "userm:quits", "--input", "1x3x8x8"], "sys.exit(3)"),
        ("factory-raises", ["profile", "userm:raises", "--input", "1x3x8x8"], "weights file missing"),
        ("factory-not-module", ["profile", "userm:number", "--input", "1x3x8x8"], "not a torch.nn.Module"),
        ("forward-sys-exit", ["profile", "userm:exits", "--input", "1x3x8x8"], "sys.exit"),
        ("forward-returns-none", ["export", "userm:none", "--input", "1x3x8x8", "--to", "onnx", *out],
         "returned NoneType"),
        ("forward-wrong-shape", ["profile", "digits-cnn", "--input", "1x3x16x16"], "DigitsCNN.forward failed"),
        ("data-dependent-branch", ["export", "userm:branchy", "--input", "1x3x8x8", "--to", "onnx",
                                   "--exporter", "torchscript", *out], "data-dependent control flow in gate (Gate)"),
        ("data-dependent-blob", ["export", "userm:branchy", "--input", "1x3x8x8", "--to", "blob", *out],
         "data-dependent control flow"),
        ("pretrained-without-weights", ["profile", "resnet18", "--input", "1x3x32x32", "--pretrained"],
         "drop --pretrained"),
        ("pt-not-pickle", ["profile", "{ws}/random.pt", "--input", "1x1x16x16"], "not a PyTorch model file"),
        ("pt-pickled-module", ["profile", "{ws}/pickled.pt", "--input", "1x1x16x16"], "--trust-pickle"),
        ("pt-state-dict", ["profile", "{ws}/state.pt", "--input", "1x1x16x16"], "bare state dict"),
        ("onnx-missing", ["profile", "{ws}/absent.onnx"], "does not exist"),
        ("onnx-corrupt", ["profile", "{ws}/broken.onnx", "--input", "1x3x8x8"], "broken.onnx"),
        ("onnx-empty", ["export", "{ws}/empty.onnx", "--to", "openvino", *out], "empty.onnx"),
        ("target-unknown", ["check", *DIGITS, "--target", "tpu9"], "unknown target 'tpu9'"),
        ("target-bad-yaml", ["check", *DIGITS, "--target", "{ws}/bad.yaml"], "not valid YAML"),
        ("precision-unknown", ["check", *DIGITS, "--target", "cpu", "--precision", "fp12"], "unknown precision"),
        ("to-unknown", ["export", *DIGITS, "--to", "tflite", *out], "unknown export format"),
        ("to-onnx-from-onnx", ["export", "{ws}/digits.onnx", "--to", "onnx", *out], "already an ONNX file"),
        ("onnx-input-mismatch", ["export", "{ws}/digits.onnx", "--input", "1x3x32x32", "--to", "openvino", *out],
         "does not match"),
        ("mean-count", ["export", *DIGITS, "--to", "openvino", "--mean", "1,2", *out], "--mean has 2 values"),
        ("mean-not-number", ["export", *DIGITS, "--to", "openvino", "--mean", "a,b", *out], "--mean"),
        ("shaves", ["export", *DIGITS, "--to", "blob", "--shaves", "99", *out], "shaves=99 is out of range"),
        ("ir-precision", ["export", *DIGITS, "--to", "openvino", "--precision", "int4", *out],
         "unknown IR precision"),
        ("input-type", ["export", *DIGITS, "--to", "openvino", "--input-type", "u16", *out], "--input-type"),
        ("exporter", ["export", *DIGITS, "--exporter", "tf", *out], "unknown ONNX exporter"),
        ("opset", ["export", *DIGITS, "--opset", "99", *out], "opset 99 is out of range"),
        ("blob-opset", ["export", *DIGITS, "--to", "blob", "--exporter", "torchscript", "--opset", "17", *out],
         "opset <= 13"),
        ("reverse-one-channel", ["export", *DIGITS, "--to", "openvino", "--reverse-channels", *out],
         "--reverse-channels needs 3 channels"),
        ("qnn-no-calib", ["export", *DIGITS, "--to", "qnn", *out], "--calib"),
        ("qnn-soc", ["export", *DIGITS, "--to", "qnn", "--soc", "SM1234", "--calib", "digits", *out],
         "unknown Snapdragon SoC 'SM1234'"),
        ("json-device", ["profile", *DIGITS, "--json", "/dev/null"], "not a regular file"),
        ("json-symlink", ["profile", *DIGITS, "--json", "{ws}/link.json"], "is a symlink"),
        ("json-directory", ["profile", *DIGITS, "--json", "{ws}/jsondir"], "is a directory"),
        ("out-is-a-file", ["export", *DIGITS, "--to", "onnx", "--out", "{ws}/notes.txt"], "is not a folder"),
        ("calib-text-npy", ["quantize", *DIGITS, "--calib", "{ws}/text.npy", *out], "not a valid .npy"),
        ("calib-nan", ["quantize", *DIGITS, "--calib", "{ws}/nan.npy", *out], "NaN"),
        ("calib-objects", ["quantize", *DIGITS, "--calib", "{ws}/objects.npy", *out], "Python objects"),
        ("calib-missing", ["quantize", *DIGITS, "--calib", "{ws}/absent.npy", *out], "unknown dataset"),
        ("calib-empty-folder", ["quantize", *DIGITS, "--calib", "{ws}/empty_dir", *out], "holds no images"),
        ("calib-wrong-shape", ["quantize", *DIGITS, "--calib", "{ws}/wrongshape.npy", *out], "has shape 8x3x5x5"),
        ("quant-mode", ["quantize", *DIGITS, "--mode", "int3", "--calib", "digits", *out],
         "unknown quantization mode"),
        ("quant-backend", ["quantize", *DIGITS, "--backend", "tensorrt", "--calib", "digits", *out],
         "unknown quantizer backend"),
        ("quant-static-no-calib", ["quantize", *DIGITS, *out], "--calib"),
        ("prune-amount", ["prune", *DIGITS, "--amount", "1.5", *out], "amount must be a fraction"),
        ("prune-granularity", ["prune", *DIGITS, "--granularity", "blob", *out], "unknown granularity"),
        ("prune-ignore", ["prune", *DIGITS, "--ignore", "nope", *out], "ignored layer 'nope' does not exist"),
        ("prune-criterion", ["prune", *DIGITS, "--criterion", "hessian2", *out], "criterion 'hessian2'"),
        ("distill-data", ["distill", *DIGITS, "--teacher", "digits-cnn", "--data", "imagenet", *out],
         "unknown dataset 'imagenet'"),
        ("bench-threads", ["bench", *DIGITS, "--threads", "0"], "--threads"),
        ("bench-runtime", ["bench", *DIGITS, "--runtime", "tensorrt"], "unknown runtime 'tensorrt'"),
        ("blocks-size", ["blocks", "compare", "ghost", "--size", "64by64"], "--size"),
        ("toolchain-name", ["toolchain", "install", "tensorrt"], "unknown toolchain 'tensorrt'"),
        ("qnn-activations", ["qnn", *DIGITS, "--activations", "s4", "--calib", "digits", *out],
         "unknown QNN activations"),
        ("qnn-weights", ["qnn", *DIGITS, "--weights", "u4", "--calib", "digits", *out], "unknown QNN weights"),
        ("bench-dynamic-dims", ["bench", "{ws}/dyn.onnx"], "has dynamic dims; give the shape to time with --input"),
        ("bench-input-mismatch", ["bench", "{ws}/digits.onnx", "--input", "1x3x32x32"], "does not match"),
        ("quant-budget-nan", ["quantize", *DIGITS, "--calib", "digits", "--budget", "nan", *out], "finite number"),
        ("out-empty", ["prune", *DIGITS, "--out", ""], "--out is empty"),
        ("out-empty-equals", ["export", *DIGITS, "--to", "onnx", "--out="], "--out is empty"),
        ("out-under-a-file", ["prune", *DIGITS, "--out", "{ws}/notes.txt/sub"], "notes.txt is a file"),
        ("out-dangling-symlink", ["prune", *DIGITS, "--out", "{ws}/dangling"], "is a dangling symlink"),
        ("hf-folder-channel", ["prune", "{minilm}", "-g", "channel", "-i", "1x16", *out],
         "-g head, ffn or transformer-layer"),
        ("hf-folder-input-hint", ["prune", "{minilm}", "-g", "head", "-i", "abc", *out], "BATCHxSEQUENCE"),
        ("hf-folder-missing-weights", ["prune", "{ws}/morelayers", "-g", "head", "-i", "1x16", *out],
         "has no weights for"),
        ("hf-distill-temperature", ["distill", "{minilm}", "--teacher", "{minilm}", "-T", "2", *out],
         "--temperature does not apply to the Hugging Face folder"),
        ("hf-distill-alpha-raw", ["distill", "{minilm}", "--teacher", "{minilm}", "--alpha", "0.3", "--raw-teacher",
                                  *out], "--alpha, --raw-teacher do not apply"),
        ("hf-teacher-image-student", ["distill", *DIGITS, "--teacher", "{minilm}", *out],
         "is a Hugging Face folder but the student"),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def digits_onnx(ws):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx
    from edgedeploy.zoo.digits import DigitsCNN

    return export_onnx(DigitsCNN().eval(), torch.zeros(1, 1, 16, 16), OnnxConfig(exporter="torchscript", opset=13),
                       out=ws, name="digits").path


@pytest.mark.parametrize(("argv", "needle"), [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(ws, digits_onnx, capfd, monkeypatch, argv, needle):
    monkeypatch.chdir(ws)
    monkeypatch.syspath_prepend(str(ws))
    sys.modules.pop("userm", None)
    notes_before = (ws / "notes.txt").read_text()
    from edgedeploy.zoo.minilm import model_dir

    rc = main([a.replace("{ws}", str(ws)).replace("{minilm}", str(model_dir())) for a in argv])
    captured = capfd.readouterr()
    text = captured.out + captured.err
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert rc == 2, text
    assert "Traceback" not in text
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert needle in text, text
    assert not (ws / "out").exists() or not list((ws / "out").iterdir()), sorted((ws / "out").iterdir())
    assert (ws / "notes.txt").read_text() == notes_before and (ws / "link.json").is_symlink()
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_catalogue_is_large_enough():
    assert len(CASES) >= 60


def test_closed_stdout_pipe_stops_quietly_with_141():
    """`edgedeploy targets | head -0`: the reader is gone before anything is printed; no error line, exit 141."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "edgedeploy.cli", "targets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()                      # before the CLI has imported anything, so every write hits EPIPE
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141, err.decode()
    assert b"error" not in err and b"Traceback" not in err
