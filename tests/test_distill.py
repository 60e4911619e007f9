"""Knowledge distillation on sklearn's real digits: soft targets, feature hints with adapters, errors."""
from __future__ import annotations

import pytest
import torch

from edgedeploy.compress.distill import DistillConfig, distill, kd_loss
from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.zoo.digits import DigitsCNN, accuracy, digits_cnn, load_digits_data


def _all(captured) -> str:
    """stdout and stderr of a CLI run (errors are printed on stderr)."""
    return captured.out + captured.err



@pytest.fixture(scope="module")
def data():
    return load_digits_data()


@pytest.fixture(scope="module")
def teacher():
    torch.set_num_threads(1)
    return digits_cnn(pretrained=True, epochs=4)


def test_kd_loss_is_zero_for_identical_logits_and_scales_with_t2():
    a = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    assert float(kd_loss(a, a, 4.0)) == pytest.approx(0.0, abs=1e-6)
    b = a.flip(1)
    manual = torch.nn.functional.kl_div(torch.log_softmax(a / 2, 1), torch.softmax(b / 2, 1), reduction="batchmean") * 4
    assert float(kd_loss(a, b, 2.0)) == pytest.approx(float(manual), rel=1e-5)


def test_small_student_learns_from_teacher(teacher, data):
    t_acc = accuracy(teacher, data.x_test, data.y_test)
    torch.manual_seed(0)
    student = DigitsCNN(width=8)
    before = accuracy(student, data.x_test, data.y_test)
    res = distill(student, teacher, data, DistillConfig(epochs=8, alpha=0.5),
                  eval_fn=lambda m: accuracy(m, data.x_test, data.y_test), progress=False)
    assert t_acc > 95.0 and before < 30.0
    assert res.history[-1]["eval"] > max(95.0, t_acc - 1.5)      # a 4x smaller student, 8 short epochs
    assert [h["epoch"] for h in res.history] == [float(i) for i in range(1, 9)]
    assert res.history[-1]["kd"] < res.history[0]["kd"]
    assert accuracy(student, data.x_test, data.y_test) == before    # the given student is not modified


def test_feature_distillation_with_adapters(teacher, data):
    torch.manual_seed(0)
    cfg = DistillConfig(epochs=2, lr=3e-3, feature_pairs=(("head.2", "head.2"), ("down", "down")), feature_weight=0.5)
    res = distill(DigitsCNN(width=8), teacher, data, cfg, progress=False)
    assert res.history[0]["feat"] > 0 and res.history[-1]["feat"] < res.history[0]["feat"]
    assert not any(m._forward_hooks for m in res.model.modules())          # hooks removed afterwards
    assert not any(m._forward_hooks for m in teacher.modules())


def test_label_free_distillation(teacher, data):
    xs = [x for x, _ in data.batches(64)]
    torch.manual_seed(0)
    res = distill(DigitsCNN(width=8), teacher, xs, DistillConfig(epochs=8, alpha=1.0), progress=False)
    assert accuracy(res.model, data.x_test, data.y_test) > 85.0     # never saw a label
    with pytest.raises(ConfigError, match="no labels but alpha=0.5"):
        distill(DigitsCNN(width=8), teacher, xs, DistillConfig(epochs=1), progress=False)


def test_bad_input(teacher, data):
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        DistillConfig(temperature=0)
    with pytest.raises(ConfigError, match="alpha must be in"):
        DistillConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="student layer 'haed' in feature_pairs does not exist.*head"):
        distill(DigitsCNN(width=8), teacher, data, DistillConfig(epochs=1, feature_pairs=(("haed", "head"),)),
                progress=False)
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 5))
    with pytest.raises(ShapeError, match="student output .* and teacher output"):
        distill(wrong, teacher, data, DistillConfig(epochs=1), progress=False)


def test_cli_distill(tmp_path, capsys, teacher):
    from edgedeploy.cli import main

    student = tmp_path / "student.pt"
    torch.manual_seed(0)
    torch.save(DigitsCNN(width=8), student)
    teacher_pt = tmp_path / "teacher.pt"
    torch.save(teacher, teacher_pt)
    out = tmp_path / "out"
    args = ["distill", str(student), "--teacher", str(teacher_pt), "--epochs", "1", "--input", "1x1x16x16",
            "--out", str(out)]
    assert main(args) == 2                          # whole pickled modules run code: refused unless trusted
    assert "--trust-pickle" in _all(capsys.readouterr()) and not out.exists()
    rc = main(args + ["--trust-pickle"])
    text = _all(capsys.readouterr())
    assert rc == 0, text
    assert "top-1 on digits test" in text
    assert {"model.pt", "model.onnx", "distill_history.json", "manifest.json"} <= {p.name for p in out.iterdir()}
    assert main(["distill", str(student), "--teacher", str(teacher_pt), "--data", "imagenet", "--out", str(out),
                 "--trust-pickle", "--input", "1x1x16x16"]) == 2
    assert "unknown dataset 'imagenet'" in _all(capsys.readouterr())
