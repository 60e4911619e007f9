"""What each recipe step does: one library call each, on the run's current model, data and artifacts.

A step gets the run ``State`` and its own folder, may replace the current model (train, swap, reparameterize,
prune, distill: saved as ``model.pt`` so ``--resume`` can restore it) or add artifacts (quantize, export), and
returns an ``Outcome`` whose ``data`` is the library result's ``to_dict()``, what the report renders.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .recipe import Recipe, Step


@dataclass
class State:
    """What flows from step to step: the current model and variant, data, the trained baseline, artifacts."""

    recipe: Recipe
    run_dir: Path
    model: Any
    variant: str = "baseline"
    data: Any = None
    baseline: Any = None
    artifacts: list[tuple[str, Path]] = field(default_factory=list)   # (variant, file) for bench and evaluate
    transforms: list[dict[str, Any]] = field(default_factory=list)   # architecture changes since the source model

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The model's input shape (the recipe's ``input``)."""
        return self.recipe.input

    def example(self) -> Any:
        """A seeded example input at the recipe's shape."""
        import torch

        if self.shape is None:
            raise ConfigError("this step needs the model's input shape: add `input: NxCxHxW` to the recipe")
        return torch.rand(self.shape, generator=torch.Generator().manual_seed(0))


@dataclass
class Outcome:
    """A step's result: its data (for the report), the variant it produced or measured, artifacts, a headline."""

    data: dict[str, Any]
    variant: str | None = None
    artifacts: list[str] = field(default_factory=list)
    headline: str = ""
    saves_model: bool = False


def transform_of(step: Step, state: State) -> dict[str, Any]:
    """The record of an architecture-changing step, saved in model.pt so the model can be rebuilt (modelref)."""
    import dataclasses

    if step.kind == "swap":
        return {"kind": "swap", "rules": list(step.options.get("rules") or ["stem-s2d"]), "input": list(state.shape)}
    if step.kind == "mod":
        return {"kind": "mod", "config": dataclasses.asdict(step.config)}
    if step.kind == "nas":
        return {"kind": "nas", "arch": dict(state.model.arch_dict)}
    return {"kind": step.kind, "input": list(state.shape)}


@dataclass(frozen=True)
class NasStepConfig:
    """Options of the recipe step ``nas``: a NAS config YAML (default: ``NasConfig()``, the digits-sized space) and
    overrides of it. The recipe's ``input`` fixes the candidates' resolution and channels, its ``data`` what they
    train on."""

    config: str | None = None
    trials: int | None = None
    epochs: int | None = None
    final_epochs: int | None = None
    sampler: str | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.final_epochs is not None and self.final_epochs < 1:
            raise ConfigError("step nas: final_epochs must be >= 1 (the chosen architecture becomes the run's "
                              "model, so it is retrained)")
        self.build(None)                                 # a bad config file or override fails at recipe load

    def build(self, input_shape: tuple[int, ...] | None) -> Any:
        """The NasConfig of the step, its space narrowed to ``input_shape`` (N x C x H x H) when given."""
        import dataclasses

        from ..compress.nas.config import NasConfig, load_config

        over = {k: v for k in ("trials", "epochs", "final_epochs", "sampler", "seed")
                if (v := getattr(self, k)) is not None}
        cfg = load_config(self.config, **over) if self.config else dataclasses.replace(NasConfig(), **over)
        if input_shape is None:
            return cfg
        if len(input_shape) != 4 or input_shape[2] != input_shape[3]:
            raise ConfigError(f"step nas searches square images: the recipe's input must be NxCxHxH, got "
                              f"{'x'.join(map(str, input_shape))}")
        space = dataclasses.replace(cfg.space, resolution=(input_shape[2],), in_channels=input_shape[1])
        return dataclasses.replace(cfg, space=space)


def _torch(state: State, kind: str) -> Any:
    import torch

    if not isinstance(state.model, torch.nn.Module):
        raise ConfigError(f"step {kind} needs a PyTorch model, but the recipe's model is the file {state.model}")
    return state.model


def train(step: Step, state: State, folder: Path) -> Outcome:
    """Train a zoo model with its registered training loop on the recipe's data."""
    from ..zoo import task

    trainer = task(state.recipe.model, "trainer")
    if trainer is None:
        raise ConfigError(f"step train needs a zoo model with a training loop; {state.recipe.model} has none "
                          "(train it yourself, or use pretrained: true)")
    model = _torch(state, "train")
    history = trainer(model, state.data, **step.options)
    state.baseline = model
    last = history[-1] if history else {}
    return Outcome({"history": history}, state.variant, headline=f"loss {last.get('loss', float('nan')):.4g}",
                   saves_model=True)


def profile(step: Step, state: State, folder: Path) -> Outcome:
    """Per-layer cost of the current model."""
    from ..metrics.counting import MacRules
    from ..metrics.profile import ProfileConfig
    from ..metrics.profile import profile as run

    rules = MacRules.named(step.options.get("rules", "standard"))
    prof = run(state.model, state.shape, precision=step.options.get("precision", "fp32"),
               fps=step.options.get("fps"), config=ProfileConfig(rules=rules))
    return Outcome(prof.to_dict(), state.variant, headline=f"{prof.macs / 1e6:.3g} M MACs, {prof.params:,} params")


def check(step: Step, state: State, folder: Path) -> Outcome:
    """The current model against the recipe's target (or the step's)."""
    from ..targets.check import check as run

    target = step.options.get("target") or state.recipe.target
    if target is None:
        raise ConfigError("step check needs a target: add `target: myriadx` to the recipe or to the step")
    report = run(state.model, target, input_shape=state.shape, precision=step.options.get("precision"),
                 fps=step.options.get("fps"))
    return Outcome(report.to_dict(), state.variant, headline=f"{report.status} on {report.target}, "
                                                             f"est. {report.latency_ms:.3g} ms")


def swap(step: Step, state: State, folder: Path) -> Outcome:
    """Replace layers by hardware-aware blocks."""
    from ..blocks.swap import swap as run

    result = run(_torch(state, "swap"), step.options.get("rules") or ["stem-s2d"], state.shape)
    state.model, state.variant = result.model, "swapped"
    state.transforms.append(transform_of(step, state))
    return Outcome(result.to_dict(), "swapped", headline=f"{len(result.changes)} layer(s) swapped", saves_model=True)


def reparameterize(step: Step, state: State, folder: Path) -> Outcome:
    """Fuse re-parameterizable blocks (parity asserted)."""
    from ..blocks.reparam import reparameterize as run

    result = run(_torch(state, "reparameterize"), state.shape)
    state.model, state.variant = result.model, "reparameterized"
    state.transforms.append(transform_of(step, state))
    return Outcome(result.report.to_dict(), "reparameterized", headline=str(result.report).split(";")[0],
                   saves_model=True)


def prune(step: Step, state: State, folder: Path) -> Outcome:
    """Prune the current model; writes model.pt, model.onnx and the report into the step folder."""
    from ..compress.prune import prune as run
    from ..compress.prune.api import save_compressed

    result = run(_torch(state, "prune"), step.config, state.example(), train_data=state.data)
    save_compressed(result.model, state.example(), folder, "prune", state.recipe.model,
                    {"config": step.config.to_dict()}, report_name="prune_report.json", report=result.report,
                    transforms=state.transforms)
    state.model, state.variant = result.model, "pruned"
    r = result.report
    return Outcome(r.to_dict(), "pruned", ["model.pt", "model.onnx"],
                   headline=f"MACs /{r.macs_ratio:.2f}, params /{r.params_ratio:.2f}")


def distill(step: Step, state: State, folder: Path) -> Outcome:
    """Distill the trained baseline (the teacher) into the current model on the recipe's data."""
    from ..compress.distill_report import distill_summary
    from ..compress.prune.api import save_compressed

    teacher = state.baseline if step.options.get("teacher", "baseline") == "baseline" else None
    if teacher is None:
        raise ConfigError("step distill needs a teacher: the trained baseline (add a train step, or "
                          "pretrained: true, before the compression steps)")
    if teacher is state.model:
        raise ConfigError("step distill recovers a compressed model from the baseline: put it after a prune or "
                          "swap step")
    summary = distill_summary(_torch(state, "distill"), teacher, state.data, step.config)
    save_compressed(summary.model, state.example(), folder, "distill", state.recipe.model,
                    {"teacher": "baseline"}, report_name="distill_history.json", report=summary,
                    transforms=state.transforms)
    state.model, state.variant = summary.model, "distilled"
    return Outcome(summary.to_dict(), "distilled", ["model.pt", "model.onnx"],
                   headline=f"top-1 {summary.before_top1:.2f}% -> {summary.after_top1:.2f}%")


def early_exit(step: Step, state: State, folder: Path) -> Outcome:
    """Add, train and calibrate early exits; export the stages and time them (the current model stays as it is)."""
    from ..compress.early_exit.flow import early_exits

    if state.data is None:
        raise ConfigError("step early_exit needs labelled data with train and test splits: add `data:` to the recipe")
    result = early_exits(_torch(state, "early_exit"), step.config, state.data, out=folder)
    test = result.calibration.test
    speed = ", ".join(f"{rt} x{r['speedup']:.2f}" for rt, r in result.latency.items())
    head = (f"test top-1 {test.full_accuracy:.2f}% -> {test.accuracy:.2f}%, {100 * test.saving:.0f}% MACs saved"
            + (f", {speed}" if speed else "")) if test else "calibrated"
    files = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return Outcome(result.to_dict(), "early-exit", sorted(files), headline=head)


def mod(step: Step, state: State, folder: Path) -> Outcome:
    """Route tokens around transformer blocks (Mixture of Depths); fine-tune afterwards with a train step."""
    from ..compress.mod import apply_mod

    result = apply_mod(_torch(state, "mod"), step.config, example_inputs=state.example())
    state.model, state.variant = result.model, "mod"
    state.transforms.append(transform_of(step, state))
    return Outcome(result.to_dict(), "mod", headline=f"{len(result.routed)} block(s) routed, MACs "
                                                     f"x{result.macs_ratio:.3f}", saves_model=True)


def nas(step: Step, state: State, folder: Path) -> Outcome:
    """Search architectures on the recipe's data (``compress.nas``); the chosen one, retrained, becomes the run's
    model (the steps after it profile, check, export and time it)."""
    from ..compress.nas import load_chosen
    from ..compress.nas import nas as run

    cfg = step.config.build(state.shape) if state.shape is not None else step.config.build(None)
    result = run(cfg, out=folder / "search", train_data=state.recipe.data)
    if result.chosen is None or result.final is None:
        raise ConfigError(f"step nas: no trial of {cfg.trials} completed, so no architecture was chosen; raise "
                          "trials or relax the constraints")
    state.model, state.variant = load_chosen(folder / "search" / "best"), "nas"
    state.transforms = [transform_of(step, state)]       # the source architecture is gone
    final = result.final
    return Outcome(result.to_dict(), "nas", headline=f"{final['arch']}: top-1 {final['accuracy']:.2f}%, "
                                                      f"{len(result.pareto)} on the Pareto front", saves_model=True)


def quantize(step: Step, state: State, folder: Path) -> Outcome:
    """Quantize the current model; the artifact joins the run's artifacts (bench, evaluate)."""
    import numpy as np

    from ..compress.quantize import quantize as run

    example = None if isinstance(state.model, Path) else np.zeros(state.shape, np.float32)
    result = run(state.model, step.config, calibration=state.data, eval_data=state.data,
                 train_data=state.data if step.config.mode == "qat" else None, example_inputs=example, out=folder)
    variant = f"quantized-{step.config.mode}"
    state.artifacts.append((variant, result.path))
    r = result.report
    acc = f", top-1 {r.accuracy_before:.2f}% -> {r.accuracy_after:.2f}%" if r.accuracy_after is not None else ""
    return Outcome(r.to_dict(), variant, [result.path.name], headline=f"size /{r.compression:.2f}{acc}")


def export(step: Step, state: State, folder: Path) -> Outcome:
    """Export the current model to every format asked, each verified."""
    from .export import export as run

    results = run(state.model, step.config, input_shape=state.shape, calibration=state.data, out=folder)
    for r in results:
        if r.format in ("onnx", "openvino"):
            state.artifacts.append((state.variant, r.path))
    return Outcome({"results": [r.to_dict() for r in results]}, state.variant, [r.path.name for r in results],
                   headline=", ".join(f"{r.format} {r.path.name}" for r in results))


def bench(step: Step, state: State, folder: Path) -> Outcome:
    """Measured latency of the current torch model and every artifact, side by side."""
    from ..runtime import benchmark_matrix

    import torch

    sources: list[tuple[str, Any, Any]] = []
    variants: dict[str, str] = {}
    if isinstance(state.model, torch.nn.Module):
        sources.append((f"{state.variant} (torch)", state.model, state.shape))
        variants[sources[-1][0]] = state.variant
    for variant, path in state.artifacts:
        sources.append((f"{variant}: {path.name}", path, None))
        variants[sources[-1][0]] = variant
    result = benchmark_matrix(sources, step.config)
    for row in result.rows:
        row["variant"] = variants[row["artifact"]]
    best = min(result.rows, key=lambda r: r["median_ms"]) if result.rows else None
    head = f"fastest {best['artifact']} on {best['runtime']}: {best['median_ms']:.3f} ms" if best else "nothing to time"
    return Outcome(result.to_dict(), None, headline=head)


def evaluate(step: Step, state: State, folder: Path) -> Outcome:
    """Accuracy of the current model and every artifact on the data's held-out split."""
    from ..zoo import task

    evaluator = task(state.recipe.model, "evaluator") or _top1
    if state.data is None:
        raise ConfigError("step evaluate needs labelled data: add `data:` to the recipe")
    rows = [{"variant": state.variant, **evaluator(state.model, state.data)}]
    rows += [{"variant": f"{variant}: {path.name}", **evaluator(path, state.data)} for variant, path in state.artifacts]
    head = ", ".join(f"{r['variant']}: {_headline_metric(r)}" for r in rows[:3])
    torch_model = not isinstance(state.model, Path)
    sampler, extras = task(state.recipe.model, "samples"), task(state.recipe.model, "extras")
    shots = sampler(state.model, folder, state.data) if sampler is not None and torch_model else []
    data = {"metrics": rows, "samples": shots}
    if extras is not None and torch_model:
        data["extras"] = extras(state.model, state.data)
    return Outcome(data, state.variant, [s["file"] for s in shots], headline=head)


def _headline_metric(row: dict[str, Any]) -> str:
    """``top1 97.2`` (or the row's first metric) for a step headline."""
    key = "top1" if "top1" in row else next((k for k in row if k != "variant"), None)
    return f"{key} {row[key]}" if key is not None else "no metrics"


def _top1(model_or_artifact: Any, data: Any) -> dict[str, float]:
    """Top-1 accuracy (percent) of a classifier (torch module or ONNX/IR file) on the labelled held-out split."""
    import numpy as np

    from ..compress.distill_report import top1
    from ..data import batches

    if not isinstance(model_or_artifact, Path):
        return {"top1": round(top1(model_or_artifact, data), 3)}
    from ..runtime import load

    got = batches(data, "evaluation", batch_size=256)
    pred = np.argmax(load(model_or_artifact).run_rows(np.concatenate([b.inputs[0] for b in got])), -1)
    labels = np.concatenate([b.labels for b in got])
    return {"top1": round(100.0 * float(np.mean(pred == labels)), 3)}


def report(step: Step, state: State, folder: Path) -> Outcome:
    """The run's one-file HTML report (written after the steps before it)."""
    from ..report import render_report

    path = render_report(state.run_dir, out=folder / "report.html")
    return Outcome({"report": path.name}, None, [path.name], headline=str(path))


RUNNERS: dict[str, Callable[[Step, State, Path], Outcome]] = {
    "train": train, "profile": profile, "check": check, "swap": swap, "reparameterize": reparameterize,
    "prune": prune, "distill": distill, "early_exit": early_exit, "mod": mod, "quantize": quantize,
    "export": export, "bench": bench, "evaluate": evaluate, "report": report, "nas": nas,
}
