"""BERT and ViT with a head count and an FFN width per layer: the code a pruned Hugging Face folder ships with.

Self-contained on purpose (imports only torch and transformers): ``save_pretrained`` copies this file into
the model folder and writes ``auto_map`` into its config.json, so the folder loads anywhere with
``AutoModel.from_pretrained(folder, trust_remote_code=True)``, without edgedeploy.

Why custom code at all (checked on transformers 5.24): ``PreTrainedModel.prune_heads`` and
``config.pruned_heads`` are gone; ``BertConfig`` derives the head size as ``hidden_size / num_attention_heads``
and has one ``intermediate_size``; ``ViTConfig`` honours an optional ``head_dim`` but has one head count and
one width for all layers. The only per-layer lists in the library belong to unrelated decoder architectures
(Gemma3n's list-valued ``intermediate_size``, Laguna's ``num_attention_heads_per_layer``). So a model whose
layers differ, or a BERT with fewer heads of the same size, has no stock description; these classes build the
stock model and then resize each layer from two lists (named after Laguna's):

* ``num_attention_heads_per_layer``: live head count of each layer (``head_dim`` = the unpruned head size),
* ``intermediate_size_per_layer``: live FFN width of each layer.

``num_attention_heads`` keeps the unpruned count, which fixes the head size as in the stock config;
``pruned_heads`` ({original layer: [original head indices]}) and ``pruned_layers`` record what was removed.
The forward code is the stock one: it reshapes with ``-1`` heads, so slimmer projections just work.
"""
from __future__ import annotations

from typing import Any

from torch import nn
from transformers import (BertConfig, BertForSequenceClassification, BertModel, ViTConfig, ViTForImageClassification,
                          ViTModel)


def _lists(config: Any, n_layers: int) -> tuple[list[int], list[int]]:
    heads = list(getattr(config, "num_attention_heads_per_layer", None) or [])
    ffn = list(getattr(config, "intermediate_size_per_layer", None) or [])
    if len(heads) != n_layers or len(ffn) != n_layers:
        raise ValueError(f"config.num_attention_heads_per_layer ({len(heads)}) and intermediate_size_per_layer "
                         f"({len(ffn)}) must list one value per layer ({n_layers} = num_hidden_layers)")
    if min(heads + ffn, default=1) < 1:
        raise ValueError("every layer needs at least one attention head and one FFN unit")
    return [int(h) for h in heads], [int(f) for f in ffn]


def _linear(cin: int, cout: int, like: nn.Linear) -> nn.Linear:
    return nn.Linear(cin, cout, bias=like.bias is not None, device=like.weight.device, dtype=like.weight.dtype)


def resize_bert_layers(base: BertModel, config: Any) -> None:
    """Give each BertLayer its own head count and FFN width (stock forward code, smaller projections)."""
    head_dim = config.hidden_size // config.num_attention_heads
    heads, ffn = _lists(config, len(base.encoder.layer))
    for layer, h, f in zip(base.encoder.layer, heads, ffn):
        sa, out = layer.attention.self, layer.attention.output
        for name in ("query", "key", "value"):
            setattr(sa, name, _linear(config.hidden_size, h * head_dim, getattr(sa, name)))
        sa.num_attention_heads, sa.attention_head_size, sa.all_head_size = h, head_dim, h * head_dim
        out.dense = _linear(h * head_dim, config.hidden_size, out.dense)
        layer.intermediate.dense = _linear(config.hidden_size, f, layer.intermediate.dense)
        layer.output.dense = _linear(f, config.hidden_size, layer.output.dense)


def resize_vit_layers(base: ViTModel, config: Any) -> None:
    """Give each ViTLayer its own head count and MLP width (stock forward code, smaller projections)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    heads, ffn = _lists(config, len(base.layers))
    for layer, h, f in zip(base.layers, heads, ffn):
        att = layer.attention
        for name in ("q_proj", "k_proj", "v_proj"):
            setattr(att, name, _linear(config.hidden_size, h * head_dim, getattr(att, name)))
        att.o_proj = _linear(h * head_dim, config.hidden_size, att.o_proj)
        att.num_attention_heads, att.head_dim = h, head_dim
        layer.mlp.fc1 = _linear(config.hidden_size, f, layer.mlp.fc1)
        layer.mlp.fc2 = _linear(f, config.hidden_size, layer.mlp.fc2)


class PrunedBertConfig(BertConfig):
    """BertConfig plus ``num_attention_heads_per_layer`` and ``intermediate_size_per_layer``."""

    model_type = "pruned_bert"


class PrunedViTConfig(ViTConfig):
    """ViTConfig plus ``num_attention_heads_per_layer`` and ``intermediate_size_per_layer``."""

    model_type = "pruned_vit"


class PrunedBertModel(BertModel):
    """BertModel whose layers follow the per-layer lists of a PrunedBertConfig."""

    config_class = PrunedBertConfig

    def __init__(self, config: PrunedBertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        resize_bert_layers(self, config)
        self.post_init()


class PrunedBertForSequenceClassification(BertForSequenceClassification):
    """BertForSequenceClassification whose encoder layers follow the per-layer lists."""

    config_class = PrunedBertConfig

    def __init__(self, config: PrunedBertConfig) -> None:
        super().__init__(config)
        resize_bert_layers(self.bert, config)
        self.post_init()


class PrunedViTModel(ViTModel):
    """ViTModel whose layers follow the per-layer lists of a PrunedViTConfig."""

    config_class = PrunedViTConfig

    def __init__(self, config: PrunedViTConfig, add_pooling_layer: bool = True, use_mask_token: bool = False) -> None:
        super().__init__(config, add_pooling_layer=add_pooling_layer, use_mask_token=use_mask_token)
        resize_vit_layers(self, config)
        self.post_init()


class PrunedViTForImageClassification(ViTForImageClassification):
    """ViTForImageClassification whose encoder layers follow the per-layer lists."""

    config_class = PrunedViTConfig

    def __init__(self, config: PrunedViTConfig) -> None:
        super().__init__(config)
        resize_vit_layers(self.vit, config)
        self.post_init()


#: stock class name -> its per-layer twin, and the Auto class each twin answers to in config.json's auto_map
PRUNED_CLASSES: dict[str, tuple[type, str]] = {
    "BertModel": (PrunedBertModel, "AutoModel"),
    "BertForSequenceClassification": (PrunedBertForSequenceClassification, "AutoModelForSequenceClassification"),
    "ViTModel": (PrunedViTModel, "AutoModel"),
    "ViTForImageClassification": (PrunedViTForImageClassification, "AutoModelForImageClassification"),
}
PRUNED_CONFIGS = {"bert": PrunedBertConfig, "vit": PrunedViTConfig}

PrunedBertConfig.register_for_auto_class()
PrunedViTConfig.register_for_auto_class()
for _cls, _auto in PRUNED_CLASSES.values():
    _cls.register_for_auto_class(_auto)
