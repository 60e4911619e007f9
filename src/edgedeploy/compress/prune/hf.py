"""Hugging Face transformer anatomy for pruning: find each layer's heads and FFN, cut them, and rebuild the model
from an updated config so that no head count or width is left stale.

Supported: BERT-style encoders (``BertModel`` and models built on it, e.g. the MiniLM-L6 sentence encoder) and
ViTs (``ViTModel`` / ``ViTForImageClassification``) of transformers >= 5.

Saved representation (``rebuild`` picks it; see ``modeling_pruned`` for why transformers 5.x needs a choice):

* stock, when every layer keeps all heads and the FFN widths are equal (``ffn`` with local scope,
  ``transformer-layer``), or for a ViT whose layers all keep the same number of heads (ViTConfig's
  ``head_dim``): a plain ``BertConfig`` / ``ViTConfig`` with new ``num_hidden_layers``, ``intermediate_size``,
  ``num_attention_heads``; the folder loads with ``AutoModel.from_pretrained(folder)``.
* per-layer otherwise (heads of a BERT, or layers that differ): ``pruned_bert`` / ``pruned_vit`` configs with
  ``num_attention_heads_per_layer`` and ``intermediate_size_per_layer``; ``save_pretrained`` ships
  ``modeling_pruned.py`` and ``auto_map``, and the folder loads with
  ``AutoModel.from_pretrained(folder, trust_remote_code=True)``.

Either way the config also records ``pruned_heads`` ({original layer: [original heads]}) and ``pruned_layers``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ...errors import ConfigError, ModelRunError


@dataclass
class Block:
    """One transformer layer of a supported family, with the modules that pruning resizes."""

    name: str
    layer: nn.Module
    attn: nn.Module                 # holds num_attention_heads (BertSelfAttention / ViTAttention)
    qkv: tuple[nn.Linear, ...]      # query, key, value projections (output rows grouped by head)
    attn_out: nn.Linear             # output projection (input columns grouped by head)
    ffn_in: nn.Linear
    ffn_out: nn.Linear
    head_dim: int

    @property
    def heads(self) -> int:
        """Live number of attention heads."""
        return self.attn_out.in_features // self.head_dim

    @property
    def width(self) -> int:
        """Live FFN width."""
        return self.ffn_in.out_features


def _stock_class(model: nn.Module) -> type:
    """The transformers class a model is (or whose per-layer twin it is)."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("transformers.models."):
            return cls
    return type(model)


def family(model: nn.Module) -> str:
    """``bert`` or ``vit`` by structure, or a ConfigError naming what is supported."""
    base = getattr(model, "base_model", model)
    if not hasattr(model, "config") or not hasattr(model, "save_pretrained"):
        base = None
    enc = getattr(getattr(base, "encoder", None), "layer", None)
    if isinstance(enc, nn.ModuleList) and enc and hasattr(getattr(enc[0].attention, "self", None), "query"):
        return "bert"
    layers = getattr(base, "layers", None)
    if isinstance(layers, nn.ModuleList) and layers and hasattr(layers[0].attention, "q_proj") \
            and hasattr(getattr(layers[0], "mlp", None), "fc1"):
        return "vit"
    raise ConfigError(f"{type(model).__name__} is not a Hugging Face BERT-style encoder or ViT (transformers "
                      "BertModel/ViTModel families); head, ffn and transformer-layer pruning work on those. "
                      "For other models use granularity 'channel' or 'layer'")


def layer_list(model: nn.Module) -> nn.ModuleList:
    """The ModuleList holding the transformer layers."""
    base = model.base_model
    return base.encoder.layer if family(model) == "bert" else base.layers


def blocks(model: nn.Module) -> list[Block]:
    """Every transformer layer of the model, in order."""
    fam = family(model)
    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for layer in layer_list(model):
        if fam == "bert":
            sa = layer.attention.self
            out.append(Block(names[id(layer)], layer, sa, (sa.query, sa.key, sa.value), layer.attention.output.dense,
                             layer.intermediate.dense, layer.output.dense, sa.attention_head_size))
        else:
            at = layer.attention
            out.append(Block(names[id(layer)], layer, at, (at.q_proj, at.k_proj, at.v_proj), at.o_proj,
                             layer.mlp.fc1, layer.mlp.fc2, at.head_dim))
    return out


def original_heads(model: nn.Module) -> int:
    """Heads per layer before any pruning (hidden_size / head size)."""
    b = blocks(model)[0]
    return model.config.hidden_size // b.head_dim


def _cut(linear: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping ``keep`` output rows (dim 0) or input columns (dim 1)."""
    w = linear.weight.detach().index_select(dim, keep)
    new = nn.Linear(w.shape[1], w.shape[0], bias=linear.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if linear.bias is not None:
            new.bias.copy_(linear.bias.detach() if dim == 1 else linear.bias.detach().index_select(0, keep))
    new.train(linear.training)
    return new


def _set(parent: nn.Module, old: nn.Linear, new: nn.Linear) -> None:
    for name, child in parent.named_children():
        if child is old:
            setattr(parent, name, new)
            return
    raise ModelRunError(f"could not find {old} in {type(parent).__name__}")


RIDGE = 0.1      # refit regularisation, relative to the mean input energy: pulls towards the plainly cut weights


def refit(linear: nn.Linear, gram: torch.Tensor, keep: torch.Tensor, ridge: float = RIDGE) -> nn.Linear:
    """``linear`` cut to input columns ``keep``, refit to reproduce the uncut output (least squares, ridge).

    ``gram`` is the augmented Gram matrix ``[x, 1]^T [x, 1]`` of the layer's inputs over real tokens. Solves
    ``min ||[x_K, 1] B - [x, 1] W_a^T||^2 + lam ||B - B_cut||^2``: the kept units absorb what the removed ones
    contributed (their mean and what correlates with the kept ones); with little data it stays at the cut.
    """
    new = _cut(linear, keep, 1)
    f = linear.in_features
    w_a = torch.cat([linear.weight.detach().double(), (linear.bias.detach().double()[:, None] if linear.bias
                                                       is not None else torch.zeros(linear.out_features, 1,
                                                                                    dtype=torch.float64))], 1)
    k = torch.cat([keep, torch.tensor([f])])
    a = gram[k][:, k]
    lam = ridge * float(a.diagonal()[:-1].mean().clamp(min=1e-12))
    rhs = gram[k] @ w_a.T + lam * w_a[:, k].T
    beta = torch.linalg.solve(a + lam * torch.eye(len(k), dtype=a.dtype), rhs).T
    with torch.no_grad():
        new.weight.copy_(beta[:, :-1].to(new.weight.dtype))
        if new.bias is not None:
            new.bias.copy_(beta[:, -1].to(new.bias.dtype))
    return new


def _project(linear: nn.Linear, idx: torch.Tensor, gram: torch.Tensor | None) -> nn.Linear:
    return refit(linear, gram, idx) if gram is not None else _cut(linear, idx, 1)


def prune_heads(model: nn.Module, block: Block, keep: list[int], gram: torch.Tensor | None = None) -> None:
    """Keep only heads ``keep`` (live positions) of ``block``: slice Q/K/V rows and output-projection columns
    (refit to the uncut output when the Gram matrix of its inputs is given)."""
    d = block.head_dim
    idx = torch.tensor([h * d + i for h in sorted(keep) for i in range(d)], dtype=torch.long)
    parent = block.attn
    for lin in block.qkv:
        _set(parent, lin, _cut(lin, idx, 0))
    out_parent = block.layer.attention.output if family(model) == "bert" else block.attn
    _set(out_parent, block.attn_out, _project(block.attn_out, idx, gram))
    block.attn.num_attention_heads = len(keep)
    if hasattr(block.attn, "all_head_size"):
        block.attn.all_head_size = len(keep) * d


def prune_ffn(model: nn.Module, block: Block, keep: list[int], gram: torch.Tensor | None = None) -> None:
    """Keep only FFN units ``keep`` of ``block``: slice the up-projection rows and down-projection columns
    (refit to the uncut output when the Gram matrix of its inputs is given)."""
    idx = torch.tensor(sorted(keep), dtype=torch.long)
    bert = family(model) == "bert"
    _set(block.layer.intermediate if bert else block.layer.mlp, block.ffn_in, _cut(block.ffn_in, idx, 0))
    _set(block.layer.output if bert else block.layer.mlp, block.ffn_out, _project(block.ffn_out, idx, gram))


def drop_layers(model: nn.Module, drop: list[int]) -> None:
    """Remove layers (live positions) from the layer list; remaining layers are renumbered."""
    layers = layer_list(model)
    kept = [m for i, m in enumerate(layers) if i not in set(drop)]
    for i in sorted(drop, reverse=True):
        del layers[i]
    for i, m in enumerate(kept):
        sa = getattr(m.attention, "self", None)
        if sa is not None and hasattr(sa, "layer_idx"):
            sa.layer_idx = i
    model.config.num_hidden_layers = len(layers)


@dataclass
class Provenance:
    """Which original layers and heads are still live (read from / written to the config)."""

    total_layers: int                  # layers of the unpruned model
    live_layers: list[int]             # original index of each live layer
    live_heads: list[list[int]]        # per live layer: original indices of its live heads

    @classmethod
    def read(cls, model: nn.Module) -> "Provenance":
        """From ``config.pruned_layers`` / ``config.pruned_heads`` (absent: nothing pruned before)."""
        cfg, bl = model.config, blocks(model)
        dropped = sorted(int(i) for i in (getattr(cfg, "pruned_layers", None) or []))
        total = len(bl) + len(dropped)
        live = [i for i in range(total) if i not in dropped]
        gone = {int(k): {int(h) for h in v} for k, v in (getattr(cfg, "pruned_heads", None) or {}).items()}
        full = original_heads(model)
        heads = []
        for orig, b in zip(live, bl):
            alive = [h for h in range(full) if h not in gone.get(orig, set())]
            heads.append(alive if len(alive) == b.heads else list(range(b.heads)))
        return cls(total, live, heads)

    def write(self, model: nn.Module) -> None:
        """Store on the config: ``pruned_layers`` (original indices) and ``pruned_heads`` ({layer: heads})."""
        full = original_heads(model)
        model.config.pruned_layers = sorted(set(range(self.total_layers)) - set(self.live_layers))
        model.config.pruned_heads = {str(orig): sorted(set(range(full)) - set(h))
                                     for orig, h in zip(self.live_layers, self.live_heads) if len(h) < full}


def rebuild(model: nn.Module) -> tuple[nn.Module, str]:
    """A fresh model of the right class built from an updated config, holding ``model``'s weights.

    Loading the state dict strictly proves the config describes every tensor (nothing stale).
    Returns the model and the representation used ("stock" or "per-layer").
    """
    from . import modeling_pruned as mp

    fam, bl = family(model), blocks(model)
    heads, widths, full = [b.heads for b in bl], [b.width for b in bl], original_heads(model)
    stock = len(set(widths)) == 1 and (set(heads) == {full} or (fam == "vit" and len(set(heads)) == 1))
    stock_cls = _stock_class(model)
    cfg = model.config.to_dict()
    for key in ("model_type", "auto_map", "architectures", "transformers_version", "num_attention_heads_per_layer",
                "intermediate_size_per_layer"):
        cfg.pop(key, None)
    cfg.update(num_hidden_layers=len(bl), intermediate_size=max(widths))
    if stock:
        from transformers import BertConfig, ViTConfig

        cfg_cls = BertConfig if fam == "bert" else ViTConfig
        if fam == "vit":
            cfg.update(num_attention_heads=heads[0], head_dim=bl[0].head_dim)
        else:
            cfg.pop("head_dim", None)
        cls = stock_cls
    else:
        if stock_cls.__name__ not in mp.PRUNED_CLASSES:
            raise ConfigError(f"{stock_cls.__name__} with per-layer head counts or FFN widths has no loadable "
                              f"Hugging Face description; supported: {', '.join(mp.PRUNED_CLASSES)} (or prune "
                              "every layer alike: scope='local', no per-layer amounts)")
        cfg_cls = mp.PRUNED_CONFIGS[fam]
        cls = mp.PRUNED_CLASSES[stock_cls.__name__][0]
        cfg.update(num_attention_heads=full, num_attention_heads_per_layer=heads, intermediate_size_per_layer=widths)
        if fam == "vit":
            cfg.update(head_dim=bl[0].head_dim)
    config = cfg_cls.from_dict(cfg)
    config._attn_implementation = model.config._attn_implementation
    kwargs: dict[str, Any] = {}
    if getattr(model, "pooler", "absent") is None:                  # a bare encoder built without its pooler
        kwargs["add_pooling_layer"] = False
    if getattr(getattr(model, "embeddings", None), "mask_token", None) is not None:     # ViTModel(use_mask_token)
        kwargs["use_mask_token"] = True
    new = cls(config, **kwargs).to(next(model.parameters()).dtype)
    try:
        new.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ModelRunError(f"the pruned {stock_cls.__name__} does not match its own updated config "
                            f"({str(exc).splitlines()[0][:200]}); please report this") from exc
    return new.train(model.training), "stock" if stock else "per-layer"


def hidden_state_pairs(model: nn.Module) -> tuple[tuple[int, int], ...]:
    """(student, teacher) indices into ``hidden_states`` pairing each live layer with its unpruned original.

    Index 0 is the embedding output, index i the output of layer i; use with ``DistillConfig(hidden_pairs=...)``.
    """
    live = Provenance.read(model).live_layers
    return ((0, 0), *((i + 1, orig + 1) for i, orig in enumerate(live)))


def example_inputs(model: nn.Module, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded inputs of ``shape`` for a supported model: (input_ids, attention_mask) of BATCHxSEQUENCE token ids
    (ordinary vocabulary ids, mask all ones) for a BERT, (pixel_values,) of NxCxHxW for a ViT."""
    gen = torch.Generator().manual_seed(seed)
    if family(model) == "bert":
        if len(shape) != 2:
            raise ConfigError(f"a text encoder takes --input BATCHxSEQUENCE, e.g. 1x128 (got {'x'.join(map(str, shape))})")
        limit = int(getattr(model.config, "max_position_embeddings", shape[1]))
        if shape[1] > limit:
            raise ConfigError(f"sequence length {shape[1]} exceeds the model's max_position_embeddings {limit}")
        vocab = int(model.config.vocab_size)
        ids = torch.randint(min(1000, vocab // 2), vocab, shape, generator=gen)
        return ids, torch.ones(shape, dtype=torch.long)
    if len(shape) != 4:
        raise ConfigError(f"a ViT takes --input NxCxHxW, e.g. 1x3x224x224 (got {'x'.join(map(str, shape))})")
    return (torch.rand(shape, generator=gen),)


#: tokenizer files a pruned folder takes over from its source folder (pruning never changes the vocabulary)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                   "preprocessor_config.json")


class _MainOutput(nn.Module):
    """Forward of a Hugging Face model returning its main tensor: ``logits`` if it has them, else
    ``last_hidden_state`` (what the ONNX export of a saved folder carries)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.model(*args)
        return out["logits"] if "logits" in out else out["last_hidden_state"]


@contextlib.contextmanager
def quiet_transformers(errors_only: bool = False) -> Iterator[None]:
    """transformers without progress bars on the console for the block; ``errors_only`` also silences its warnings
    (e.g. the load-report table a caller turns into its own one-line error)."""
    import transformers

    log = transformers.utils.logging
    bars, verbosity = log.is_progress_bar_enabled(), log.get_verbosity()
    log.disable_progress_bar()
    if errors_only:
        log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()


def save_hf_folder(model: nn.Module, example_inputs: Any, out: Any, entry: dict[str, Any] | None = None,
                   report: Any = None, stage: str = "prune", report_name: str = "prune_report.json",
                   onnx: bool = True) -> list[Any]:
    """Write a (pruned) Hugging Face model into ``out`` as a standard folder plus ONNX; returns the files.

    ``save_pretrained`` files (config.json, model.safetensors and, for a per-layer config, modeling_pruned.py),
    model.onnx (inputs ``input_ids``/``attention_mask``/``token_type_ids`` or ``pixel_values``, batch and
    sequence dynamic, output ``logits`` or ``last_hidden_state``, parity-checked on ONNX Runtime by
    ``export_onnx``), the report (``report_name``) and a manifest entry for ``stage``. When ``entry["source"]``
    is a model folder, its tokenizer / preprocessor files are copied along: the result is as usable as its source.
    All or nothing: the files are written into a staging folder and published together (``onnx=False``: no ONNX).
    """
    import shutil
    from pathlib import Path

    from ..._io import default_permissions, output_lock, package_versions, publish, staging, update_manifest
    from ..._io import write_json_atomic
    from ...export.onnx import OnnxConfig, export_onnx
    from ._cost import as_tuple

    fam, args = family(model), as_tuple(example_inputs)
    if len(args) > (3 if fam == "bert" else 1) or not all(isinstance(a, torch.Tensor) for a in args):
        want = "(input_ids[, attention_mask[, token_type_ids]])" if fam == "bert" else "(pixel_values,)"
        raise ConfigError(f"example_inputs must be {want} tensors to export the {type(model).__name__} folder; "
                          f"got {len(args)} argument(s)")
    names = ("input_ids", "attention_mask", "token_type_ids")[:len(args)] if fam == "bert" else ("pixel_values",)
    wrapped = _MainOutput(model).eval()
    with torch.no_grad():
        main = "logits" if "logits" in model(*args) else "last_hidden_state"
    axes = {n: ({0: "batch", 1: "sequence"} if fam == "bert" else {0: "batch"}) for n in names}
    axes[main] = {0: "batch", 1: "sequence"} if fam == "bert" and main == "last_hidden_state" else {0: "batch"}
    # BERT branches on `padding_mask.all()` outside tracing only; traced, it keeps the general masked path
    config = OnnxConfig(exporter="torchscript", opset=17, input_names=names, output_names=(main,),
                        dynamic_axes=axes, allow_data_dependent=True)
    with output_lock(out) as folder, staging(folder) as tmp:
        with quiet_transformers():                             # no "Writing model shards" bar left on the console
            model.save_pretrained(tmp)
        files = [tmp / n for n in ("config.json", "model.safetensors", "modeling_pruned.py") if (tmp / n).exists()]
        source = Path(str((entry or {}).get("source") or ""))
        for name in TOKENIZER_FILES if str(source) and source.is_dir() else ():
            if (source / name).is_file():
                files.append(Path(shutil.copyfile(source / name, tmp / name)))
        if report is not None:
            files.append(write_json_atomic(tmp / report_name, report.to_dict()))
        if onnx:
            files.append(export_onnx(wrapped, args, config, out=tmp, name="model").path)
        for f in files:                                        # safetensors writes 0600; artifacts get the usual
            default_permissions(f)
        files = publish(tmp, folder, [f.name for f in files])
        update_manifest(folder, stage, {**(entry or {}), "format": "huggingface", "class": type(model).__name__,
                                          "files": [f.name for f in files],
                                          "versions": package_versions("transformers", "onnx", "onnxruntime")})
    return files
