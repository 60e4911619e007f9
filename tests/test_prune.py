"""Pruning at each granularity on the digits CNNs: what was removed, the report, errors, export."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgedeploy.compress.prune import PruneConfig, prune
from edgedeploy.errors import ConfigError
from edgedeploy.zoo.digits import DigitsCNN, load_digits_data
from edgedeploy.zoo.digits_resnet import DigitsResNet


def _all(captured) -> str:
    """stdout and stderr of a CLI run (errors are printed on stderr)."""
    return captured.out + captured.err


def _seeded(model: nn.Module) -> nn.Module:
    """Seeded weights with non-trivial BN statistics, so criteria have something to rank."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.1
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5
    return model.eval()



@pytest.fixture(scope="module")
def cnn() -> DigitsCNN:
    torch.manual_seed(0)
    return _seeded(DigitsCNN())


@pytest.fixture(scope="module")
def resnet() -> DigitsResNet:
    torch.manual_seed(0)
    return _seeded(DigitsResNet(width=8, blocks=2))


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return load_digits_data().x_test[:4]


def _no_masks(model: nn.Module) -> bool:
    return not any(hasattr(m, "weight_orig") or m._forward_pre_hooks for m in model.modules())


def test_channel_local_halves_inner_convs_and_cuts_macs(cnn, x):
    r = prune(cnn, PruneConfig("channel", "local", 0.5), x, progress=False)
    rows = {c.name: c for c in r.report.layers}
    assert rows["stem.0"].before == (16, 1) and rows["stem.0"].after == (8, 1)
    for name in ("down.0", "res.0", "res.3", "head.0"):
        out0, in0 = rows[name].before
        assert rows[name].after == (out0 // 2, in0 // 2), name      # inputs and outputs of inner convs halve
    assert rows["fc"].after == (10, 32)                              # classifier rows kept, inputs follow
    assert r.report.macs_before == 4 * 1_806_976     # batch 4 x hand count 36,864 + 294,912 + 2 x 589,824 + 294,912 + 640
    assert r.report.macs_ratio >= 3.5
    assert r.report.params_after < r.report.params_before / 3.5
    assert r.model(x).shape == (4, 10)
    assert sum(p.numel() for p in cnn.parameters()) == r.report.params_before   # the input model is untouched


def test_global_and_local_give_different_distributions(cnn, x):
    local = prune(cnn, PruneConfig("channel", "local", 0.5), x, progress=False).report
    glob = prune(cnn, PruneConfig("channel", "global", 0.5), x, progress=False).report
    ld = {k: v for k, v in local.distribution().items() if k != "fc"}
    gd = {k: v for k, v in glob.distribution().items() if k != "fc"}
    assert all(v == pytest.approx(0.5) for v in ld.values())
    assert max(gd.values()) - min(gd.values()) > 0.05               # global ranking spreads the cut unevenly
    assert ld != gd
    el = prune(cnn, PruneConfig("element", "local", 0.6), x, progress=False).report.distribution()
    eg = prune(cnn, PruneConfig("element", "global", 0.6), x, progress=False).report.distribution()
    assert all(v == pytest.approx(0.6, abs=0.01) for v in el.values())
    assert max(eg.values()) - min(eg.values()) > 0.2


def test_filter_pruning_removes_filters(cnn, x):
    r = prune(cnn, PruneConfig("filter", "local", 0.25, criterion="l1"), x, progress=False)
    rows = {c.name: c for c in r.report.layers}
    assert rows["down.0"].after == (24, 12) and rows["head.0"].after == (48, 24)
    assert r.model(x).shape == (4, 10)
    assert "own filters" in r.report.notes[0]


def test_element_pruning_is_permanent_and_honest(cnn, x):
    r = prune(cnn, PruneConfig("element", "global", 0.7), x, progress=False)
    rep = r.report
    assert _no_masks(r.model)
    zeros = sum(int((m.weight == 0).sum()) for m in r.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    total = sum(m.weight.numel() for m in r.model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert zeros / total == pytest.approx(0.7, abs=0.005)
    assert rep.macs_after == rep.macs_before and rep.size_bytes_after == rep.size_bytes_before   # dense: no gain
    assert rep.sparse_size_bytes < 0.45 * rep.size_bytes_before
    assert rep.effective_macs < 0.45 * rep.macs_before
    assert any("same speed" in n for n in rep.notes)


def test_shape_nm_2_4_pattern(cnn, x):
    r = prune(cnn, PruneConfig("shape", amount=0.5, shape_pattern="nm", nm=(2, 4)), x, progress=False)
    assert _no_masks(r.model)
    for name, m in r.model.named_modules():
        if isinstance(m, nn.Conv2d) and name != "stem.0":
            groups = m.weight.detach().movedim(1, -1).reshape(-1, 4)
            assert int((groups != 0).sum(1).max()) <= 2, name
    assert r.report.distribution()["res.0"] == pytest.approx(0.5)
    assert "stem.0" not in r.report.distribution()
    assert any("stem.0" in n and "multiple of M=4" in n for n in r.report.notes)


def test_shape_kernel_positions(cnn, x):
    r = prune(cnn, PruneConfig("shape", "local", 0.4, shape_pattern="kernel"), x, progress=False)
    for name, m in r.model.named_modules():
        if isinstance(m, nn.Conv2d):
            pos_zero = (m.weight.detach() == 0).all(0).all(0)          # a kernel position zero in every filter
            assert int(pos_zero.sum()) == 3, name                      # 40% of 9 positions -> 3 whole positions
            assert int((m.weight != 0).sum()) == m.weight.numel() * 6 // 9


def test_layer_pruning_removes_residual_blocks(resnet, x):
    local = prune(resnet, PruneConfig("layer", "local", 0.5), x, progress=False)
    glob = prune(resnet, PruneConfig("layer", "global", 0.75), x, progress=False)
    names = [c.name for c in local.report.layers]
    assert names == ["stage1.0", "stage1.1", "stage2.0", "stage2.1"]
    assert sorted(r.split(".")[0] for r in local.report.removed) == ["stage1", "stage2"]   # one per stage
    assert len(glob.report.removed) == 3
    for r in (local, glob):
        assert r.model(x).shape == (4, 10)
        assert r.report.macs_after < r.report.macs_before
        removed_params = sum(c.before[0] for c in r.report.layers if c.after[0] == 0)
        assert r.report.params_before - r.report.params_after == removed_params


def test_layer_measured_criterion_uses_eval_fn(resnet, x):
    calls = []

    def eval_fn(m: nn.Module) -> float:
        calls.append(1)
        return float(-(m(x) - resnet(x)).abs().mean())               # closeness to the unpruned outputs

    r = prune(resnet, PruneConfig("layer", "global", 0.25, criterion="measured"), x, eval_fn=eval_fn, progress=False)
    assert len(calls) == 4 and len(r.report.removed) == 1
    with pytest.raises(ConfigError, match="eval_fn"):
        prune(resnet, PruneConfig("layer", "global", 0.25, criterion="measured"), x, progress=False)


def test_iterative_schedule_calls_fine_tune(cnn, x):
    seen = []

    def fine_tune(model: nn.Module, step: int) -> None:
        assert model.training
        seen.append((step, model.down[0].out_channels))

    r = prune(cnn, PruneConfig("channel", "local", 0.5, steps=3), x, fine_tune=fine_tune, progress=False)
    assert [s for s, _ in seen] == [1, 2, 3]
    widths = [w for _, w in seen]
    assert widths == sorted(widths, reverse=True) and widths[-1] == 16 and widths[0] < 32
    assert r.report.steps == 3


def test_iterative_element_masks_survive_fine_tune(cnn, x):
    def fine_tune(model: nn.Module, step: int) -> None:      # one optimizer step that would regrow pruned weights
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        model(x).pow(2).mean().backward()
        opt.step()

    r = prune(cnn, PruneConfig("element", "local", 0.6, steps=3), x, fine_tune=fine_tune, progress=False)
    assert _no_masks(r.model)
    assert all(v == pytest.approx(0.6, abs=0.01) for v in r.report.distribution().values())


def test_taylor_needs_data_and_uses_it(cnn, x):
    with pytest.raises(ConfigError, match="needs gradients"):
        prune(cnn, PruneConfig("channel", criterion="taylor"), x, progress=False)
    d = load_digits_data()
    r = prune(cnn, PruneConfig("channel", criterion="taylor", amount=0.25), x, train_data=d.batches()[:2], progress=False)
    assert r.report.macs_ratio > 1.5


def test_round_to_and_ignored(cnn, x):
    r = prune(cnn, PruneConfig("channel", "global", 0.5, round_to=8, ignored=("head",)), x, progress=False)
    rows = {c.name: c for c in r.report.layers}
    assert rows["head.0"].after[0] == 64
    assert all(c.after[0] % 8 == 0 for n, c in rows.items() if n != "fc")


@pytest.mark.parametrize("amount", [-0.1, 1.0, 1.5, "half"])
def test_amount_outside_range(amount):
    with pytest.raises(ConfigError, match="amount must be a fraction in \\[0, 1\\)"):
        PruneConfig(amount=amount)


def test_bad_names_are_named(cnn, x):
    with pytest.raises(ConfigError, match="ignored layer 'res.9' does not exist.*did you mean"):
        prune(cnn, PruneConfig(ignored=("res.9",)), x, progress=False)
    with pytest.raises(ConfigError, match="unknown granularity 'row'.*element, channel"):
        PruneConfig(granularity="row")
    with pytest.raises(ConfigError, match="criterion 'hessian2'.*choose one of"):
        prune(cnn, PruneConfig(criterion="hessian2"), x, progress=False)
    with pytest.raises(ConfigError, match="removes exactly 0.50"):
        PruneConfig("shape", amount=0.3)


def test_layer_that_cannot_be_removed(cnn, x):
    with pytest.raises(ConfigError, match="layer 'down' cannot be removed.*removable blocks: res"):
        prune(cnn, PruneConfig("layer", targets=("down",)), x, progress=False)
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 10))
    with pytest.raises(ConfigError, match="Sequential has no removable block"):
        prune(plain, PruneConfig("layer"), x, progress=False)


def test_granularity_the_model_cannot_take(x):
    linear = nn.Sequential(nn.Flatten(), nn.Linear(256, 10))
    with pytest.raises(ConfigError, match="no prunable channel groups"):           # its only layer is the output
        prune(linear, PruneConfig("channel"), x, progress=False)
    with pytest.raises(ConfigError, match=r"shape \(kernel\) pruning: 1 \(no spatial kernel positions\)"):
        prune(linear, PruneConfig("shape", amount=0.3, shape_pattern="kernel"), x, progress=False)


def test_pruned_models_export_to_onnx_with_parity(cnn, resnet, x, tmp_path):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx

    for name, model, cfg in (("ch", cnn, PruneConfig("channel", "global", 0.5)),
                             ("layer", resnet, PruneConfig("layer", "local", 0.5)),
                             ("nm", cnn, PruneConfig("shape", amount=0.5))):
        pruned = prune(model, cfg, x, progress=False).model
        res = export_onnx(pruned, (x,), OnnxConfig(exporter="torchscript"), out=tmp_path / name)
        assert res.parity.max_abs < 1e-4, name


class _BlocksNet(nn.Module):
    """The project's own blocks around a residual add: PartialConv2d, GhostConv2d (+ its depthwise), DenseFeat."""

    def __init__(self) -> None:
        from edgedeploy.blocks import DenseFeatBlock, GhostConv2d, PartialConv2d

        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.pconv = PartialConv2d(16)
        self.ghost = GhostConv2d(16, 32)
        self.ghost2 = GhostConv2d(32, 32)
        self.dense = DenseFeatBlock(32, 64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ghost(x + self.pconv(self.stem(x)))
        x = self.dense(x + self.ghost2(x))
        return self.fc(x.mean((2, 3)))


def test_channel_pruning_keeps_project_blocks_consistent(x, tmp_path):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx

    torch.manual_seed(0)
    net = _seeded(_BlocksNet())
    r = prune(net, PruneConfig("channel", "local", 0.5), x, progress=False)
    rows = {c.name: c for c in r.report.layers}
    assert rows["pconv.conv"].after == rows["pconv.conv"].before              # its split point is fixed
    assert rows["ghost.primary.conv"].after[0] == 8                            # 16 -> 8 primary maps
    assert rows["ghost.cheap.conv"].after == (8, 8)                            # depthwise follows its input
    assert rows["ghost2.primary.conv"].after == (8, 16)                        # residual add couples ghost/ghost2
    assert rows["dense.stem.conv"].after[0] == 24 and rows["dense.growth.conv"].after[0] == 8
    assert r.model.ghost.out_ch == 16 and rows["fc"].after == (10, 32)         # concat of DenseFeat: 24 + 8
    assert r.report.macs_ratio > 2.5
    res = export_onnx(r.model, (x,), OnnxConfig(exporter="torchscript"), out=tmp_path)
    assert res.parity.max_abs < 1e-4


def test_cli_prune(tmp_path, capsys):
    from edgedeploy.cli import main

    out = tmp_path / "pruned"
    rc = main(["prune", "digits-cnn", "--input", "1x1x16x16", "--granularity", "channel", "--amount", "0.5",
               "--scope", "global", "--out", str(out)])
    assert rc == 0, _all(capsys.readouterr())
    assert {"model.pt", "model.onnx", "prune_report.json", "manifest.json"} <= {p.name for p in out.iterdir()}
    import json

    rep = json.loads((out / "prune_report.json").read_text())
    assert rep["granularity"] == "channel" and rep["macs_ratio"] > 3.5
    capsys.readouterr()
    assert main(["prune", "digits-cnn", "--input", "1x1x16x16", "--amount", "1.2", "--out", str(out)]) == 2
    err = _all(capsys.readouterr())
    assert "amount must be a fraction" in err and "Traceback" not in err
    assert main(["prune", "digits-cnn", "--input", "1x1x16x16", "--ignore", "nope", "--out", str(out)]) == 2
    assert "ignored layer 'nope' does not exist" in _all(capsys.readouterr())


def test_prune_out_is_all_or_nothing_and_honours_no_onnx(tmp_path, monkeypatch):
    from edgedeploy.errors import ExportError
    from edgedeploy.export import onnx as onnx_export

    x = torch.rand(1, 1, 16, 16)
    cfg = PruneConfig("channel", "local", 0.3)
    prune(DigitsCNN().eval(), cfg, x, out=tmp_path / "a", onnx=False, progress=False, source="digits-cnn")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["manifest.json", "model.pt", "prune_report.json"]
    before = {n: (tmp_path / "a" / n).read_bytes() for n in names}

    def broken(*args, **kwargs):
        raise ExportError("the exporter broke")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    for out in (tmp_path / "b", tmp_path / "a"):
        with pytest.raises(ExportError):
            prune(DigitsCNN().eval(), cfg, x, out=out, progress=False, source="digits-cnn")
    assert not (tmp_path / "b").exists()                                   # a new folder: removed again
    assert {n: (tmp_path / "a" / n).read_bytes() for n in sorted(p.name for p in (tmp_path / "a").iterdir())} == before


def test_cli_prune_no_onnx_writes_no_onnx(tmp_path, capsys):
    from edgedeploy.cli import main

    assert main(["prune", "digits-cnn", "-i", "1x1x16x16", "-a", "0.3", "--no-onnx", "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["manifest.json", "model.pt", "prune_report.json"]
