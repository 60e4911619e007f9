"""Head / FFN / layer pruning on a Hugging Face ViT trained here on sklearn's real digits; reload, ONNX, recovery."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from edgedeploy.compress.distill import DistillConfig, distill
from edgedeploy.compress.prune import PruneConfig, prune
from edgedeploy.compress.prune import hf
from edgedeploy.errors import ConfigError
from edgedeploy.zoo.digits import load_digits_data

pytest.importorskip("transformers")


def _vit(seed: int = 0) -> torch.nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=64, num_hidden_layers=4,
                    num_attention_heads=4, intermediate_size=128, num_labels=10, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
    return ViTForImageClassification(cfg)


def _fit(model: torch.nn.Module, data, epochs: int = 12, lr: float = 3e-3) -> torch.nn.Module:
    """AdamW with a one-cycle schedule: ~90% on the digits test split in 12 short epochs."""
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * len(data.batches(64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        for xb, yb in data.batches(64, seed=epoch):
            opt.zero_grad()
            F.cross_entropy(model(xb).logits, yb).backward()
            opt.step()
            sched.step()
    return model.eval()


def _acc(model: torch.nn.Module, data) -> float:
    with torch.no_grad():
        return float((model(data.x_test).logits.argmax(1) == data.y_test).float().mean() * 100)


@pytest.fixture(scope="module")
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = load_digits_data(size=16)
    model = _fit(_vit(), data)
    yield model, data, _acc(model, data)
    torch.set_num_threads(threads)


def _same(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x).logits - b(x).logits).abs().max())


def test_uniform_heads_stay_stock_and_reload(setup, tmp_path):
    from transformers import AutoModel, AutoModelForImageClassification, ViTForImageClassification

    model, data, base = setup
    res = prune(model, PruneConfig("head", "local", 0.5, criterion="taylor"), data.x_test[:4],
                train_data=data.batches(64)[:4], progress=False)
    small, rep = res.model, res.report
    assert base > 88.0
    assert [b.heads for b in hf.blocks(small)] == [2, 2, 2, 2]
    assert type(small) is ViTForImageClassification                     # uniform heads: the stock class
    assert small.config.num_attention_heads == 2 and small.config.head_dim == 16
    assert {k: len(v) for k, v in small.config.pruned_heads.items()} == {"0": 2, "1": 2, "2": 2, "3": 2}
    assert [c.after for c in rep.layers] == [(2,)] * 4 and rep.distribution()["vit.layers.0.attention"] == 0.5
    assert 1.2 < rep.macs_ratio < 1.6                                   # attention projections halve, MLPs stay
    small.save_pretrained(tmp_path / "vit")
    back = AutoModelForImageClassification.from_pretrained(tmp_path / "vit").eval()     # no custom code needed
    assert type(back) is ViTForImageClassification and _same(small, back, data.x_test[:32]) < 1e-5
    base_model = AutoModel.from_pretrained(tmp_path / "vit").eval()
    with torch.no_grad():
        diff = (base_model(data.x_test[:8]).last_hidden_state - small.vit(data.x_test[:8]).last_hidden_state).abs()
    assert float(diff.max()) < 1e-5
    assert _acc(small, data) < base                                      # it did remove something that mattered


def test_taylor_keeps_more_accuracy_than_random(setup):
    model, data, _ = setup
    accs = {}
    for crit in ("taylor", "l2", "random"):
        r = prune(model, PruneConfig("head", "global", 0.5, criterion=crit), data.x_test[:4],
                  train_data=data.batches(64)[:4], progress=False)
        accs[crit] = _acc(r.model, data)
        assert sum(b.heads for b in hf.blocks(r.model)) == 8
    assert accs["taylor"] > accs["random"] + 5, accs
    assert accs["l2"] > accs["random"], accs


def test_global_ffn_is_per_layer_and_reloads_with_its_code(setup, tmp_path):
    from transformers import AutoModelForImageClassification

    model, data, _ = setup
    res = prune(model, PruneConfig("ffn", "global", 0.5, criterion="l2", max_amount=0.9), data.x_test[:4],
                train_data=data.batches(64)[:2], progress=False)
    widths = [b.width for b in hf.blocks(res.model)]
    assert sum(widths) == 256 and len(set(widths)) > 1 and min(widths) >= 13     # 90% cap per layer
    assert res.model.config.model_type == "pruned_vit"
    assert res.model.config.intermediate_size_per_layer == widths
    files = hf.save_hf_folder(res.model, data.x_test[:4], tmp_path / "vit", report=res.report)
    assert [f.name for f in files] == ["config.json", "model.safetensors", "modeling_pruned.py", "prune_report.json",
                                       "model.onnx"]
    from edgedeploy.runtime import load

    logits = load(files[-1], runtime="onnxruntime").run(data.x_test[:32].numpy())[0]
    with torch.no_grad():
        assert float((torch.from_numpy(logits) - res.model(data.x_test[:32]).logits).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModelForImageClassification.from_pretrained(tmp_path / "vit")
    back = AutoModelForImageClassification.from_pretrained(tmp_path / "vit", trust_remote_code=True).eval()
    assert [b.width for b in hf.blocks(back)] == widths and _same(res.model, back, data.x_test[:32]) < 1e-5


def test_prune_all_three_then_recover_by_distillation_and_export(setup, tmp_path):
    from edgedeploy.export.onnx import OnnxConfig, export_onnx

    model, data, base = setup
    m = model
    for gran, amount in (("transformer-layer", 0.25), ("head", 0.5), ("ffn", 0.5)):
        m = prune(m, PruneConfig(gran, "local", amount, criterion="taylor"), data.x_test[:4],
                  train_data=data.batches(64)[:4], progress=False).model
    assert len(hf.blocks(m)) == 3 and m.config.num_hidden_layers == 3 and len(m.config.pruned_layers) == 1
    cut = _acc(m, data)
    pairs = hf.hidden_state_pairs(m)
    assert pairs[0] == (0, 0) and len(pairs) == 4
    batches = [{"pixel_values": x, "labels": y} for x, y in data.batches(64)]
    cfg = DistillConfig(epochs=6, lr=2e-3, alpha=0.7, temperature=2.0, hidden_pairs=pairs, hidden_weight=0.5,
                        cache_teacher=True)
    rec = distill(m, model, batches, cfg, progress=False)
    after = _acc(rec.model, data)
    assert rec.history[-1]["hidden"] < rec.history[0]["hidden"]
    short = dataclasses.replace(cfg, epochs=2)
    cached, fresh = (distill(m, model, batches[:6], dataclasses.replace(short, cache_teacher=c), progress=False)
                     for c in (True, False))
    assert cached.history == fresh.history                     # the cache only skips recomputing the teacher
    assert after > cut and after >= base - 2.0, (base, cut, after)
    onnx = export_onnx(rec.model, (data.x_test[:8],), OnnxConfig(exporter="torchscript", output_names=("logits",)),
                       out=tmp_path)
    assert onnx.parity.max_abs < 1e-4


def test_errors(setup):
    model, data, _ = setup
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    with pytest.raises(ConfigError, match="not a Hugging Face BERT-style encoder or ViT"):
        prune(cnn, PruneConfig("head", amount=0.5), torch.zeros(1, 1, 8, 8), progress=False)
    with pytest.raises(ConfigError, match="criterion 'fpgm' cannot rank head"):
        PruneConfig("head", criterion="fpgm")
    with pytest.raises(ConfigError, match="round_to applies to channel counts and FFN widths"):
        PruneConfig("head", round_to=8)
    with pytest.raises(ConfigError, match="needs a loss"):
        prune(model.vit, PruneConfig("head", criterion="taylor"), data.x_test[:4], progress=False)
    with pytest.raises(ConfigError, match="no head of .* is left to prune"):
        prune(model, PruneConfig("head", ignored=("vit.layers",)), data.x_test[:4], progress=False)
    with pytest.raises(ConfigError, match="unknown output_loss"):
        DistillConfig(output_loss="l1")
    with pytest.raises(ConfigError, match="hidden_pairs must be"):
        DistillConfig(hidden_pairs=((1, -1),))
    with pytest.raises(ConfigError, match=r"hidden pair \(9, 0\) is out of range: the student has 5"):
        distill(model, model, [{"pixel_values": data.x_test[:4]}], DistillConfig(alpha=1.0, epochs=1,
                hidden_pairs=((9, 0),)), progress=False)
    with pytest.raises(ConfigError, match="has no labels but alpha=0.5"):
        distill(model, model, [{"pixel_values": data.x_test[:4]}], DistillConfig(epochs=1), progress=False)


def test_cosine_and_mse_output_losses_pull_the_student_to_the_teacher(setup):
    model, data, _ = setup
    student = prune(model, PruneConfig("transformer-layer", amount=0.5), data.x_test[:4],
                    train_data=data.batches(64)[:2], progress=False).model              # 2 of 4 layers
    batches = [{"pixel_values": x} for x, _ in data.batches(64)[:8]]          # label-free, from the train split

    def gap(m: torch.nn.Module, loss: str) -> float:                          # on the test split
        with torch.no_grad():
            s, t = m(data.x_test).logits, model(data.x_test).logits
        return float(1 - F.cosine_similarity(s, t).mean() if loss == "cosine" else F.mse_loss(s, t))

    for loss in ("cosine", "mse"):
        rec = distill(student, model, batches, DistillConfig(output_loss=loss, alpha=1.0, epochs=3, lr=5e-4,
                                                              cache_teacher=True), progress=False)
        assert rec.history[-1]["kd"] < 0.5 * rec.history[0]["kd"], (loss, rec.history)
        assert gap(rec.model, loss) < 0.3 * gap(student, loss), loss          # measured: 0.11-0.12


def test_layer_granularity_on_a_vit_drops_transformer_layers_and_out_writes_a_stock_folder(setup, tmp_path):
    """prune(granularity="layer") on a HF encoder ranks whole transformer layers (said in the notes); ``out=``
    writes the Hugging Face folder (AutoModel loads it) with a parity-checked ONNX, as the CLI and recipes do."""
    from transformers import AutoModelForImageClassification

    model, data, _ = setup
    res = prune(model, PruneConfig(granularity="layer", amount=0.5), data.x_test[:2], train_data=data.batches(64)[:4],
                progress=False, out=tmp_path / "p", source="vit")
    assert res.report.granularity == "transformer-layer" and "transformer layers" in res.report.notes[0]
    assert res.model.config.num_hidden_layers == 2
    names = {p.name for p in (tmp_path / "p").iterdir()}
    assert {"config.json", "model.safetensors", "model.onnx", "prune_report.json"} <= names
    again = AutoModelForImageClassification.from_pretrained(tmp_path / "p").eval()
    assert _same(res.model, again, data.x_test[:8]) < 1e-5


def test_cli_prunes_a_vit_folder_on_digits(setup, tmp_path, capsys):
    """`edgedeploy prune FOLDER` on an image model: the folder's own class (ViTForImageClassification) is
    rebuilt, heads are ranked by Taylor scores on the real digits, and the result folder classifies."""
    from transformers import AutoModelForImageClassification

    from edgedeploy.cli import main

    model, data, acc = setup
    model.save_pretrained(tmp_path / "vit")
    out = tmp_path / "heads"
    rc = main(["prune", str(tmp_path / "vit"), "-g", "head", "-a", "0.5", "-c", "taylor", "--input", "1x1x16x16",
               "--data", "digits", "--out", str(out)])
    text = capsys.readouterr()
    assert rc == 0, text.out + text.err
    assert "scored on the seeded example input only" not in text.out        # --data was used
    back = AutoModelForImageClassification.from_pretrained(str(out)).eval()   # same heads per layer: stock
    assert [layer.attention.num_attention_heads for layer in back.vit.layers] == [2] * 4
    taylor = _acc(back, data)
    rc = main(["prune", str(tmp_path / "vit"), "-g", "head", "-a", "0.5", "-c", "random", "--input", "1x1x16x16",
               "--out", str(tmp_path / "random")])
    assert rc == 0 and "written to" in capsys.readouterr().out
    random = _acc(AutoModelForImageClassification.from_pretrained(str(tmp_path / "random")).eval(), data)
    assert taylor > random + 5 and taylor < acc, (acc, taylor, random)      # the real digits ranked the heads
    rc = main(["prune", str(tmp_path / "vit"), "-g", "head", "--input", "1x32", "--out", str(tmp_path / "x")])
    text = capsys.readouterr()
    assert rc == 2 and "a ViT takes --input NxCxHxW" in text.out + text.err and "Traceback" not in text.err
