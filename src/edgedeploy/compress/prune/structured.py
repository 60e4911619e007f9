"""Channel and filter pruning: Torch-Pruning's DependencyGraph says what is coupled, its pruning
functions cut, our criterion registry says what to cut. Channels are physically removed."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from torch import nn

from ...errors import ConfigError, EdgeDeployError
from .base import WEIGHTED, Granularity, PruneContext, is_ignored, register_granularity
from .config import PruneConfig, resolve_names
from .importance import accumulate_gradients, structured_importance
from .report import LayerChange


def fixed_width_layers(model: nn.Module) -> list[nn.Module]:
    """Layers whose channel count must not change: a PartialConv2d's split point is fixed by its inner conv."""
    from ...blocks import PartialConv2d

    return [m.conv for m in model.modules() if isinstance(m, PartialConv2d)]


def _block_syncs() -> dict[type, Callable[[nn.Module, int], None]]:
    """Our blocks keep channel counts in plain attributes; after a cut they must follow the new tensors."""
    from ...blocks import GhostConv2d

    def ghost(m: nn.Module, trunc: int) -> None:
        m.out_ch = m.primary.conv.out_channels + m.cheap.conv.out_channels - trunc

    return {GhostConv2d: ghost}


def _ghost_trunc(m: nn.Module) -> int:
    """Channels a GhostConv2d slices off its concatenation (0 when ratio divides out_ch)."""
    return m.primary.conv.out_channels + m.cheap.conv.out_channels - m.out_ch


def _channels(model: nn.Module) -> dict[str, tuple[str, tuple[int, int]]]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            out[name] = (type(m).__name__, (m.out_features, m.in_features))
        elif isinstance(m, WEIGHTED):
            out[name] = (type(m).__name__, (m.out_channels, m.in_channels))
    return out


def _attention_blocks(model: nn.Module) -> list[nn.Module]:
    """Attention modules in the timm/ViT style: a fused ``qkv`` Linear, ``num_heads`` and ``head_dim`` attributes."""
    return [m for m in model.modules() if isinstance(getattr(m, "qkv", None), nn.Linear)
            and isinstance(getattr(m, "num_heads", None), int) and hasattr(m, "head_dim")]


@contextlib.contextmanager
def _torch_pruning_errors(model: nn.Module, what: str) -> Iterator[None]:
    """Torch-Pruning's own failures (index errors deep in its dependency graph) as one clear refusal."""
    try:
        yield
    except EdgeDeployError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the dependency graph on this architecture
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigError(f"Torch-Pruning cannot {what} the channel groups of {type(model).__name__} "
                          f"({type(exc).__name__}: {first}); add the modules it cannot follow (attention, "
                          "custom reshapes) to PruneConfig.ignored, or use granularity 'element'") from exc


@register_granularity("channel", "filter")
class StructuredPruning(Granularity):
    """Remove whole channels (coupled-group ranking) or filters (own-filter ranking) with DepGraph."""

    def __init__(self, model: nn.Module, config: PruneConfig, ctx: PruneContext) -> None:
        import torch_pruning as tp

        super().__init__(model, config, ctx)
        self.before = _channels(model)
        syncs = _block_syncs()
        self.syncs = [(m, syncs[type(m)], _ghost_trunc(m)) for m in model.modules() if type(m) in syncs]
        self.fixed = [n for n, m in model.named_modules() if any(m is f for f in fixed_width_layers(model))]
        ratio_dict = {}
        for name, mod in zip(config.layer_amounts or {}, resolve_names(model, tuple(config.layer_amounts or {}),
                                                                        "layer_amounts")):
            ratio_dict[mod] = float(config.layer_amounts[name])
        blocks = [b for b in _attention_blocks(model) if not is_ignored(b, ctx.ignored)]
        attention = [n for n, m in model.named_modules() if any(m is b for b in blocks)]
        if attention:
            raise ConfigError(f"{type(model).__name__} has attention blocks ({', '.join(attention[:3])}"
                              f"{', ...' if len(attention) > 3 else ''}) whose head layout channel pruning would "
                              "break; prune them with granularity 'head' or 'ffn', or add them to PruneConfig.ignored")
        with _torch_pruning_errors(model, "trace"):
            self.pruner = tp.pruner.MetaPruner(
                model, ctx.example_inputs,
                importance=structured_importance(config.criterion, config.granularity),
                global_pruning=config.scope == "global", isomorphic=config.isomorphic and config.scope == "global",
                pruning_ratio=config.amount, pruning_ratio_dict=ratio_dict or None,
                max_pruning_ratio=config.max_amount, iterative_steps=config.steps,
                ignored_layers=list(ctx.ignored), round_to=config.round_to,
            )
        groups = list(self.pruner.DG.get_all_groups(ignored_layers=self.pruner.ignored_layers,
                                                    root_module_types=self.pruner.root_module_types))
        if not groups:
            raise ConfigError(f"{type(model).__name__} has no prunable channel groups outside the ignored layers "
                              f"({len(ctx.ignored)} ignored); remove names from `ignored` or use granularity 'element'")

    def step(self, fraction: float) -> None:
        accumulate_gradients(self.model, self.ctx.data, self.config.criterion, self.ctx.loss_fn)
        with _torch_pruning_errors(self.model, "prune"):
            self.pruner.step()
        for module, sync, extra in self.syncs:
            sync(module, extra)
        self.model.zero_grad(set_to_none=True)

    def finish(self) -> nn.Module:
        return self.model

    def changes(self) -> tuple[list[LayerChange], list[str], list[str]]:
        after = _channels(self.model)
        rows = [LayerChange(name, kind, "channels", before, after[name][1])
                for name, (kind, before) in self.before.items() if name in after]
        how = ("ranked by each channel's whole coupled group" if self.config.granularity == "channel"
               else "ranked by the producing layer's own filters")
        notes = [f"channels physically removed with Torch-Pruning's dependency graph ({how}); "
                 "dense runtimes get the MAC reduction as real speed"]
        if self.fixed:
            notes.append(f"kept at full width (PartialConv2d split point): {', '.join(self.fixed)} and the channels "
                         "coupled to it")
        return rows, [], notes
