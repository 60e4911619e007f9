"""Scoring one candidate: costs from the profiler, hard constraints BEFORE any training (params, MACs, predicted
latency on the target, every op supported by the target's compiler), then the objectives that need work
(accuracy after a short training or the zero-cost proxy, latency measured on the host runtime).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ...errors import ConfigError
from .build import build_model
from .config import NasConfig
from .space import Arch
from .train import TaskData, naswot, torch_threads, train


@dataclass
class Evaluation:
    """Everything measured about one candidate (``values`` are the study's objectives, in order)."""

    arch: Arch
    metrics: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)     # constraints it breaks (pruned before training)
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def values(self, objectives: tuple[str, ...]) -> list[float]:
        """The objective values in the study's order."""
        return [self.metrics[o] for o in objectives]


class Evaluator:
    """Scores architectures for one NasConfig; caches op verdicts per op structure (widths do not change ops)."""

    def __init__(self, config: NasConfig, data: TaskData | None = None) -> None:
        self.config = config
        self.data = data or TaskData(config.data, channels=config.space.in_channels,
                                     num_classes=config.space.num_classes, limit=config.train_limit, seed=config.seed)
        self._ops: dict[str, tuple[bool | None, str]] = {}

    # ---- before training ----------------------------------------------------------------------------
    def costs(self, arch: Arch, model: torch.nn.Module) -> dict[str, float]:
        """Params, MACs, traffic and energy per frame of the deploy form (fp32 profile: re-parameterizable blocks
        fused, as shipped), and the predicted latencies the objectives and constraints ask for."""
        from ...blocks.reparam import deploy_form
        from ...metrics.profile import profile
        from .predictor import predict_latency

        cfg = self.config
        deployed, _ = deploy_form(model.eval())
        prof = profile(deployed, arch.input_shape)
        out = {"params": float(prof.params), "macs": float(prof.macs), "traffic": float(prof.traffic_bytes),
               "energy": float(prof.energy.total_uj)}
        shape = arch.input_shape
        if "latency_pred" in cfg.objectives:
            out["latency_pred"] = predict_latency(deployed, shape, cfg.target, cfg.calibration_for(cfg.target))
        if cfg.constraints.latency_ms is not None:
            tgt = cfg.constraint_target
            out["latency_pred_constraint"] = (out["latency_pred"] if "latency_pred" in out and tgt == cfg.target else
                                              predict_latency(deployed, shape, tgt, cfg.calibration_for(tgt)))
        return out

    def violations(self, arch: Arch, model: torch.nn.Module, costs: dict[str, float], ops: bool = True) -> list[str]:
        """The constraints ``arch`` breaks, each as a short reason (empty: feasible); ``ops=False`` skips the
        op check (the costly one, run last and only for candidates that pass the others)."""
        c, tgt = self.config.constraints, self.config.constraint_target
        out = []
        if c.params is not None and costs["params"] > c.params:
            out.append(f"params {costs['params']:,.0f} > {c.params:,}")
        if c.macs is not None and costs["macs"] > c.macs:
            out.append(f"MACs {costs['macs']:,.0f} > {c.macs:,}")
        if c.latency_ms is not None and costs["latency_pred_constraint"] > c.latency_ms:
            out.append(f"predicted latency {costs['latency_pred_constraint']:.4g} ms > {c.latency_ms:g} ms on {tgt}")
        if ops and c.ops and not out:
            passed, message = self.ops_verdict(arch, model)
            if not self._ops_ok(passed):
                out.append(f"ops on {tgt}: {message}")
        return out

    def _ops_ok(self, passed: bool | None) -> bool:
        return passed is True or (passed is None and self.config.constraints.unknown_ops == "allow")

    def ops_verdict(self, arch: Arch, model: torch.nn.Module) -> tuple[bool | None, str]:
        """``check()``'s ops verdict for the constraint target (cached by the op structure of ``arch``)."""
        if arch.op_key not in self._ops:
            from ...targets.check import check

            verdict = check(model, self.config.constraint_target, input_shape=arch.input_shape)["ops"]
            self._ops[arch.op_key] = (verdict.passed, verdict.message)
        return self._ops[arch.op_key]

    # ---- the work -----------------------------------------------------------------------------------
    def evaluate(self, arch: Arch, on_epoch: Callable[[int, float], None] | None = None,
                 on_costs: Callable[[dict[str, float]], None] | None = None) -> Evaluation:
        """Costs and constraints first (``on_costs(metrics)`` sees them, so a trial stopped later keeps them);
        for a feasible candidate, the accuracy (or proxy) and the measured latency."""
        with torch_threads(self.config.threads):
            return self._evaluate(arch, on_epoch, on_costs)

    def _evaluate(self, arch: Arch, on_epoch: Callable[[int, float], None] | None,
                  on_costs: Callable[[dict[str, float]], None] | None) -> Evaluation:
        from .predictor import measure_latency

        cfg, t0 = self.config, time.perf_counter()
        model = build_model(arch, seed=cfg.seed)
        ev = Evaluation(arch)
        ev.metrics.update(self.costs(arch, model))
        if on_costs is not None:
            on_costs(dict(ev.metrics))
        ev.violations = self.violations(arch, model, ev.metrics)
        if ev.violations:
            ev.seconds = time.perf_counter() - t0
            return ev
        data = self.data.at(arch.resolution)
        if "proxy" in cfg.objectives:
            ev.metrics["proxy"] = naswot(model, data[0][: cfg.batch_size])
        if "accuracy" in cfg.objectives:
            ev.history = train(model, data, cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed, on_epoch)
            ev.metrics["accuracy"] = ev.history[-1]["val_top1"]
        if "latency" in cfg.objectives:
            lat = measure_latency(model, arch.input_shape, cfg.runtime, cfg.latency_repeats, stat=cfg.latency_stat)
            ev.metrics.update(latency=lat["ms"], latency_min=lat["min_ms"], latency_median=lat["median_ms"])
        ev.seconds = time.perf_counter() - t0
        return ev

    def probe(self) -> int:
        """Fail fast when no architecture can meet the constraints. The smallest architecture of every stem x
        activation x block combination is checked (MACs, params and latency only grow with the other knobs);
        ops are judged per part (stem and each block type with the activation), since a graph whose parts all
        pass is the one to compile. Returns how many combinations can meet them."""
        c, space = self.config.constraints, self.config.space
        if not c.active:
            return -1
        parts: dict[tuple[str, str, str], tuple[bool | None, str]] = {}
        closest: tuple[float, Arch, list[str]] | None = None
        corners = space.corners()
        feasible = 0
        for arch in corners:
            model = build_model(arch, seed=0)
            costs = self.costs(arch, model)
            why = self.violations(arch, model, costs, ops=False)
            if not why and c.ops:
                for s in arch.stages:
                    key = (arch.stem, arch.act, s.block)
                    if key not in parts:
                        part = Arch(arch.resolution, arch.stem, arch.stem_width, arch.act, (s,), arch.in_channels,
                                    arch.num_classes)
                        parts[key] = self.ops_verdict(part, build_model(part, seed=0))
                    if not self._ops_ok(parts[key][0]):
                        why.append(f"ops on {self.config.constraint_target}: {parts[key][1]}")
                        break
            if not why:
                feasible += 1
                continue
            excess = sum(max(0.0, costs[k] / limit - 1) for k, limit in (
                ("params", c.params), ("macs", c.macs), ("latency_pred_constraint", c.latency_ms)) if limit)
            if closest is None or excess < closest[0]:
                closest = (excess, arch, why)
        if feasible == 0 and closest is not None:
            raise ConfigError(f"no architecture of the search space can meet the constraints: the smallest of each "
                              f"of the {len(corners)} stem/activation/block combinations breaks them (closest: "
                              f"{closest[1].key}: {'; '.join(closest[2])}); relax the constraints or add smaller "
                              "or other choices")
        return feasible
