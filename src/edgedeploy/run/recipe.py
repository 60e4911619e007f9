"""YAML recipes: a model, a target, data and ordered steps, validated before anything runs.

Every error names the key, its line in the YAML file and the valid choices. A step is a mapping with one key,
the step kind, whose options are the fields of the library's config dataclass for that step (``prune`` takes
``PruneConfig`` fields, ``quantize`` takes ``QuantConfig`` fields ...), so a recipe reads like the Python API.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EdgeDeployError

#: step kind -> (config class path or None, extra option names the step itself reads)
STEP_OPTIONS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "train": (None, ()),                # options: the model's registered training loop's keywords (_train_options)
    "profile": (None, ("precision", "fps", "rules")),
    "check": (None, ("precision", "fps", "target")),
    "swap": (None, ("rules",)),
    "reparameterize": (None, ()),
    "prune": ("edgedeploy.compress.prune.config:PruneConfig", ()),
    "distill": ("edgedeploy.compress.distill:DistillConfig", ("teacher",)),
    "early_exit": ("edgedeploy.compress.early_exit.flow:EarlyExitConfig", ()),
    "mod": ("edgedeploy.compress.mod:MoDConfig", ()),
    "quantize": ("edgedeploy.compress.quantize.config:QuantConfig", ()),
    "export": ("edgedeploy.run.export:ExportConfig", ()),
    "bench": ("edgedeploy.runtime.api:BenchConfig", ("artifacts",)),
    "evaluate": (None, ()),
    "report": (None, ()),
    "nas": ("edgedeploy.run.steps:NasStepConfig", ()),
}
STEPS = tuple(STEP_OPTIONS)


@dataclass(frozen=True)
class Step:
    """One validated step: its kind, index (1-based), options (raw, as written) and built config (if any)."""

    kind: str
    index: int
    options: dict[str, Any]
    config: Any = None
    line: int | None = None

    @property
    def dirname(self) -> str:
        """``NN-kind``: the step's folder inside the run folder."""
        return f"{self.index:02d}-{self.kind}"


@dataclass(frozen=True)
class Recipe:
    """A validated recipe."""

    model: str
    input: tuple[int, ...] | None
    steps: tuple[Step, ...]
    target: str | None = None
    data: str | None = None
    pretrained: bool = False
    threads: int | None = None          # torch threads for the run (None: torch's default)
    name: str = "run"
    variant: str = "baseline"           # what the run and the report call the starting model
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as written (JSON-ready)."""
        return dict(self.raw)


_TOP = {"name": str, "model": str, "variant": str, "input": str, "target": str, "data": str, "pretrained": bool,
        "threads": int, "steps": list}
_KIND = {"str": "a string", "bool": "true or false", "int": "an integer", "float": "a number",
         "list": "a list of steps"}


#: recipes that ship with edgedeploy, run by name (``edgedeploy run digits``)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "recipes"


def shipped_recipes() -> list[str]:
    """Names of the recipes that ship with edgedeploy."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file, or a shipped recipe by name (nothing runs; every error names its line
    and the fix)."""
    import yaml

    p = Path(path)
    if not p.is_file() and str(path) in shipped_recipes():
        p = SHIPPED_DIR / f"{path}.yaml"
    if not p.is_file():
        raise ConfigError(f"recipe {p} does not exist; give the path of a YAML recipe or a shipped one: "
                          f"{', '.join(shipped_recipes())}")
    text = p.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"recipe {p} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    lines = _lines(node)
    return parse_recipe(raw, source=str(p), lines=lines, base=p.parent)


def parse_recipe(raw: Any, source: str = "<recipe>", lines: dict[tuple[Any, ...], int] | None = None,
                 base: Path | None = None) -> Recipe:
    """Validate a recipe already read into Python objects."""
    lines = lines or {}

    def bad(loc: tuple[Any, ...], why: str) -> ConfigError:
        line = next((lines[loc[:i]] for i in range(len(loc), 0, -1) if loc[:i] in lines), None)
        key = ".".join(str(k) for k in loc) or "(top level)"
        return ConfigError(f"recipe {source}{f' line {line}' if line else ''}: {key} {why}")

    if not isinstance(raw, dict):
        raise bad((), "must be a mapping with model, input, target, data and steps")
    for key, value in raw.items():
        if key not in _TOP:
            raise bad((key,), f"is not a recipe key; valid keys: {', '.join(_TOP)}")
        if not isinstance(value, _TOP[key]) and not (key == "input" and isinstance(value, list)):
            raise bad((key,), f"must be {_KIND.get(_TOP[key].__name__, _TOP[key].__name__)}, got {value!r}")
    if "model" not in raw:
        raise bad(("model",), "is missing: name the model (zoo name, package.module:factory, .onnx or model.pt)")
    shape = _shape(raw.get("input"), bad)
    _check_paths(raw, base, bad)
    if raw.get("target") is not None:
        from ..targets.target import Target

        try:
            Target.load(raw["target"] if base is None or raw["target"].count("/") == 0 else base / raw["target"])
        except EdgeDeployError as exc:
            raise bad(("target",), f"is not usable: {exc}") from None
    steps_raw = raw.get("steps") or []
    if not steps_raw:
        raise bad(("steps",), f"is empty; list steps such as: {', '.join(STEPS)}")
    steps = tuple(_step(i, item, bad, lines) for i, item in enumerate(steps_raw))
    for step in steps:
        if step.kind == "train":
            _train_options(raw["model"], step, bad)
    return Recipe(model=raw["model"], input=shape, steps=steps, target=raw.get("target"), data=raw.get("data"),
                  pretrained=bool(raw.get("pretrained", False)), threads=_threads(raw.get("threads"), bad),
                  name=str(raw.get("name") or "run"), variant=str(raw.get("variant") or "baseline"), source=source,
                  raw=raw)


def _threads(value: Any, bad: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or value < 1):
        raise bad(("threads",), f"must be a positive number of threads, got {value!r}")
    return value


def _shape(value: Any, bad: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    from ..shapes import check_shape, parse_shape

    try:
        return parse_shape(value) if isinstance(value, str) else check_shape(tuple(value))
    except EdgeDeployError as exc:
        raise bad(("input",), str(exc)) from None


def _check_paths(raw: dict[str, Any], base: Path | None, bad: Any) -> None:
    """Model files and data paths must exist before anything runs (names and zoo models are checked later)."""
    model = raw["model"]
    if Path(model).suffix.lower() in (".onnx", ".pt", ".pth", ".xml") and not _exists(model, base):
        raise bad(("model",), f"names the file {model}, which does not exist")
    data = raw.get("data")
    if data is not None and ("/" in data or Path(data).suffix) and not _exists(data, base):
        raise bad(("data",), f"names {data}, which does not exist (give a built-in dataset name, an image "
                             "folder, a COCO JSON or a .npy file)")


def _exists(path: str, base: Path | None) -> bool:
    return Path(path).exists() or (base is not None and (base / path).exists())


def _step(i: int, item: Any, bad: Any, lines: dict[tuple[Any, ...], int]) -> Step:
    loc = ("steps", i)
    if isinstance(item, str):
        item = {item: {}}
    if not isinstance(item, dict) or len(item) != 1:
        raise bad(loc, f"must be one step kind with its options, e.g. `- prune: {{amount: 0.5}}`; steps: "
                       f"{', '.join(STEPS)}")
    (kind, options), = item.items()
    if kind not in STEP_OPTIONS:
        import difflib

        close = difflib.get_close_matches(str(kind), STEPS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise bad(loc + (kind,), f"is not a step{hint}; valid steps: {', '.join(STEPS)}")
    options = options or {}
    if not isinstance(options, dict):
        raise bad(loc + (kind,), f"options must be a mapping of option: value, got {options!r}")
    config = None if kind == "train" else _config(
        kind, options, lambda key, why: bad(loc + (kind, key), why) if key else bad(loc + (kind,), why))
    return Step(kind, i + 1, dict(options), config, lines.get(loc))


def _train_options(model: str, step: Step, bad: Any) -> None:
    """A train step needs a zoo model with a training loop; its options are that loop's keyword arguments."""
    import inspect

    from ..zoo import available, task

    trainer = task(model, "trainer") if model in available() else None
    loc = ("steps", step.index - 1, "train")
    if trainer is None:
        raise bad(loc, f"needs a zoo model with a training loop; {model} has none (train it yourself and give "
                       "the model file, or use pretrained: true)")
    params = inspect.signature(trainer, eval_str=True).parameters
    valid = [n for n, p in list(params.items())[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in step.options.items():
        if key not in valid:
            raise bad(loc + (key,), f"is not an option of {model}'s training loop; valid options: "
                                    f"{', '.join(valid) or 'none'}")
        why = _train_value(key, value, params[key].annotation)
        if why:
            raise bad(loc + (key,), why)


#: training-loop options that count something (>= 1) or are rates / weights (> 0 or >= 0)
_POSITIVE, _NON_NEGATIVE = ("epochs", "batch_size", "steps", "lr"), ("weight_decay", "seed")


def _train_value(key: str, value: Any, annotation: Any) -> str:
    """Why a training-loop option's value is wrong ('' when it is fine): its type, then its range."""
    import inspect
    import math

    import pydantic

    if annotation is not inspect.Parameter.empty:
        try:
            value = pydantic.TypeAdapter(annotation).validate_python(value, strict=isinstance(value, bool))
        except pydantic.ValidationError as exc:
            want = _KIND.get(getattr(annotation, "__name__", ""), "")
            return f"must be {want}, got {value!r}" if want else f"is invalid ({exc.errors()[0]['msg']}), got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if key in _POSITIVE and value <= 0:
            return f"must be > 0, got {value!r}"
        if key in _NON_NEGATIVE and value < 0:
            return f"must be >= 0, got {value!r}"
    return ""


def _config(kind: str, options: dict[str, Any], bad: Any) -> Any:
    """Build and validate the step's config dataclass from its options (unknown keys list the valid ones)."""
    import importlib

    import pydantic

    cls_path, extra = STEP_OPTIONS[kind]
    cls = None
    if cls_path is not None:
        module, _, name = cls_path.partition(":")
        cls = getattr(importlib.import_module(module), name)
    valid = tuple(f.name for f in dataclasses.fields(cls)) if cls is not None else ()
    valid += extra
    for key in options:
        if key not in valid:
            raise bad(key, f"is not an option of {kind}; valid options: {', '.join(valid) or 'none'}")
    if cls is None:
        return None
    given = {k: v for k, v in options.items() if k not in extra}
    try:
        return pydantic.TypeAdapter(cls).validate_python(given)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(k) for k in err["loc"]) if err["loc"] else ""
        msg = err["msg"].removeprefix("Value error, ")
        raise bad(key, msg if key else f"is invalid: {msg}") from None


def _lines(node: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Line (1-based) of every key and list item in a composed YAML node tree."""
    import yaml

    out: dict[tuple[Any, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            here = path + (key_node.value,)
            out[here] = key_node.start_mark.line + 1
            out.update(_lines(value_node, here))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            here = path + (i,)
            out[here] = item.start_mark.line + 1
            out.update(_lines(item, here))
    return out
