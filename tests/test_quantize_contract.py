"""Contract every registered quantizer backend meets, for every mode it lists (new backends are picked up)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgedeploy.compress.quantize import QuantConfig, quantize, valid_pairs  # noqa: E402
from edgedeploy.zoo.digits import DigitsCNN, load_digits_data  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    d = load_digits_data()
    return DigitsCNN().eval(), d


@pytest.mark.parametrize("pair", valid_pairs())
def test_backend_contract(pair, setup, tmp_path):
    mode, backend = pair.split("/")
    model, d = setup
    res = quantize(model, QuantConfig(mode=mode, backend=backend, qat_epochs=1, latency_repeats=3),
                   calibration=d.x_train[:64], train_data=(d.x_train[:128], d.y_train[:128]),
                   eval_data=(d.x_test[:64], d.y_test[:64]), out=tmp_path)
    rep = res.report
    assert res.path.exists() and res.path.parent == tmp_path
    assert (rep.mode, rep.backend) == (mode, backend)
    assert len(rep.layers) == 6 and all(lr.precision in ("int8", "fp16", "fp32") for lr in rep.layers)
    assert rep.output_cosine > 0.9 and rep.latency_after_ms > 0 and rep.size_after_bytes > 0
    assert rep.accuracy_before is not None and rep.accuracy_after is not None
    from edgedeploy.compress.quantize.registry import get_quantizer

    out = get_quantizer(backend, mode).session(res.path).run(d.x_test[:5].numpy())[0]
    assert out.shape == (5, 10) and np.isfinite(out).all()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest[res.path.name]                   # one entry per artifact, keyed by its file
    assert entry["stage"] == f"quantize-{mode}-{backend}" and res.path.name in entry["sha256"]
