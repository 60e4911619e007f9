"""End to end on the real MiniLM-L6: 2 of 6 layers, half the heads and half the FFN cut, recovered by
distillation on stdlib docstrings, reloaded with AutoModel, exported to ONNX and quantized to INT8 dynamic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedeploy.compress.distill import DistillConfig, distill
from edgedeploy.compress.prune import PruneConfig, hf, prune, transformer  # noqa: F401  (registers granularities)
from edgedeploy.zoo import sentences as S


@pytest.mark.slow
def test_minilm_pruned_3x_fewer_macs_recovered_reloaded_and_int8(minilm_hf, tmp_path):
    from transformers import AutoModel

    from edgedeploy.compress.quantize import QuantConfig, quantize
    from edgedeploy.runtime import load

    tok, dense = minilm_hf
    sset = S.load_sentences(n_eval=300, n_pairs=150)
    texts = sset.texts()
    ref = S.encode(dense, texts, tok, max_length=64)
    data = [S.tokenize(tok, sset.train[i:i + 32], 64) for i in range(0, 256, 32)]
    example = (data[0]["input_ids"], data[0]["attention_mask"])
    model, macs0 = dense, None
    for gran, amount in (("transformer-layer", 1 / 3), ("head", 0.5), ("ffn", 0.5)):
        res = prune(model, PruneConfig(gran, "local", amount), example, train_data=data, progress=False)
        macs0 = macs0 or res.report.macs_before
        model = res.model
    assert macs0 / res.report.macs_after > 2.8                      # encoder MACs: 4/6 layers x ~1/2 each
    assert [b.heads for b in hf.blocks(model)] == [6] * 4 and [b.width for b in hf.blocks(model)] == [768] * 4
    cut = S.embedding_fidelity(ref, S.encode(model, texts, tok, max_length=64), sset)

    train = sorted(sset.train[:3000], key=len)              # similar lengths per batch: less padding
    batches = [S.tokenize(tok, train[i:i + 32], 64) for i in range(0, len(train), 32)]
    cfg = DistillConfig(output_loss="cosine", alpha=1.0, hidden_pairs=hf.hidden_state_pairs(model)[-1:],
                        epochs=1, lr=5e-4, dropout=False)
    rec = distill(model, dense, batches, cfg, progress=False)
    assert all(m.p == 0.1 for m in rec.model.modules() if isinstance(m, torch.nn.Dropout))   # restored
    got = S.encode(rec.model, texts, tok, max_length=64)
    after = S.embedding_fidelity(ref, got, sset)
    assert after.cosine_mean > cut.cosine_mean + 0.08 and after.nn_agreement > cut.nn_agreement, (cut, after)
    assert after.cosine_mean > 0.82 and after.recall_at_1 > 0.9, after
    assert after.context_recall_at_1 > after.context_recall_at_1_reference - 0.1, after

    rec.model.save_pretrained(tmp_path / "hf")
    back = AutoModel.from_pretrained(tmp_path / "hf", trust_remote_code=True).eval()
    assert float(np.abs(S.encode(back, texts[:64], tok, max_length=64) - got[:64]).max()) < 1e-5
    onnx = S.export_encoder(back, example, tmp_path / "onnx", name="pruned")
    assert onnx.parity.max_abs < 1e-4
    q = quantize(onnx.path, QuantConfig(mode="int8-dynamic"), eval_data={k: v.numpy() for k, v in data[1].items()},
                 out=tmp_path / "int8", per_layer=False, latency=False)
    int8 = S.encode(load(q.path, runtime="onnxruntime", threads=1), texts, tok, max_length=64)
    to_fp32 = S.embedding_fidelity(got, int8, sset)
    to_dense = S.embedding_fidelity(ref, int8, sset)
    assert to_fp32.cosine_mean > 0.97 and to_dense.cosine_mean > after.cosine_mean - 0.02, (to_fp32, to_dense)
    assert q.path.stat().st_size < onnx.path.stat().st_size / 2.5
