"""Device latency from a profile: the per-layer roofline scaled per op class, plus per-layer and I/O overheads.

The roofline (``check.roofline``: max of compute at peak and traffic at the usable bandwidth) stays the physics
of every layer. A target's calibration (``targets/calibration.py``, fitted by ``targets/calibrate.py`` on
published or measured latencies) multiplies each layer's roofline time by the factor of its op class (dense conv
on MyriadX's NCE runs at a fraction of peak, element-wise ops on its SHAVEs at a fraction of DRAM bandwidth, ...),
adds a fixed cost per executed layer and per inference, and the host<->device transfer of the input and output
tensors over the target's link (USB3 for an OAK camera). Ops the compiler folds into the previous convolution
(BatchNorm, ReLU-like activations) cost nothing. The per-layer cost is one number, or one per coefficient group
(``per_layer_groups``: a host runtime's kernels differ in dispatch cost); a calibration with a ``channel_block``
(a host CPU's SIMD width in channels) times convolutions on whole channel blocks and by kernel size.

    time = sum_layers factor[class(layer)] * roofline(layer) + per_layer_ms[group(layer)] * executed_layers
           + transfer * io_bytes / link_rate + fixed_ms
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import ConfigError
from ..metrics.types import LayerStats, Profile
from .report import LayerLatency
from .target import Target
from .units import OP_CLASSES, PRECISION_BITS, normalize_op

if TYPE_CHECKING:
    from .calibration import Calibration

#: Op classes (what a calibration's coefficient groups are made of), from the profiler's op names (torch module
#: classes, functional aten ops, or ONNX op types, normalized by ``normalize_op``).
_BY_NAME = {
    "bn": "batchnorm1d batchnorm2d batchnorm batchnormalization",
    "relu": "relu relu6 hardtanh clamp clip threshold",
    "leaky": "leakyrelu prelu",
    "act": "silu sigmoid hardswish hardsigmoid gelu tanh mish softplus elu selu exp erf log sqrt rsqrt reciprocal "
           "quickgelu",
    "eltwise": "add sub mul div pow maximum minimum max min neg abs where sum",
    "pool": "maxpool2d avgpool2d adaptiveavgpool2d adaptivemaxpool2d maxpool averagepool globalaveragepool "
            "globalmaxpool mean reducemean reducemax reducesum amax amin avgpool1d maxpool1d",
    "resize": "upsample upsamplingnearest2d upsamplingbilinear2d upsamplenearest2d upsamplebilinear2d interpolate "
              "resize pixelshuffle pixelunshuffle depthtospace spacetodepth gridsample gridsampler2d",
    "concat": "cat concat stack split chunk slice pad constantpadnd zeropad2d reflectionpad2d tile repeat narrow "
              "unbind gather select index",
    "permute": "permute transpose t",
    "softmax": "softmax logsoftmax layernorm groupnorm instancenorm2d instancenormalization layernormalization "
               "argmax argmin topk cumsum",
    "reshape": "view reshape flatten squeeze unsqueeze identity dropout contiguous expand clone unsafeview shape "
               "constant cast alias detach lift liftfresh to copy",
}
_NAME_CLASS = {name: cls for cls, names in _BY_NAME.items() for name in names.split()}
_CONV = {"conv1d", "conv2d", "conv3d", "conv", "convolution"}
_DECONV = {"convtranspose1d", "convtranspose2d", "convtranspose"}
_MATMUL = {"linear", "addmm", "mm", "bmm", "matmul", "gemm", "baddbmm", "einsum", "scaleddotproductattention",
           "multiheadattention", "nativemultiheadattention"}


_UNCALIBRATED = ("no latency calibration for this target: plain per-layer roofline (on MyriadX that was ~2x "
                 "optimistic); `edgedeploy targets calibrate TARGET --from runs.csv` fits one")


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def op_class(row: LayerStats, dilated: frozenset[str] = frozenset(), block: int | None = None) -> str:
    """The op class of one profile row (see ``OP_CLASSES``): convolutions by kernel, stride, groups and input
    channels read back from their MAC count and shapes (``dilated``: names of the rows whose convolution is
    dilated, see ``dilated_layers``); everything else by op name. With ``block`` (a host CPU's SIMD channel block),
    convolutions with 5 x 5 or larger kernels are ``conv_k5`` / ``depthwise_k5``: a CPU's direct-convolution
    kernels run them at another speed per MAC than 3 x 3 ones."""
    cls = _op_class(row, dilated)
    if block and cls in _SPLIT and _kernel_area(row, cls) >= 25:
        return _SPLIT[cls]
    return cls


_SPLIT = {"conv": "conv_k5", "conv_s2": "conv_k5", "conv_stem": "conv_k5", "depthwise": "depthwise_k5"}
_CONV_CLASSES = frozenset({"conv", "conv_s2", "conv_stem", "conv1x1", "depthwise", "grouped", "conv_k5",
                           "depthwise_k5"})


def _kernel_area(row: LayerStats, cls: str) -> float:
    """Kernel height x width of a convolution row, read back from its MACs per output element."""
    per_out = row.macs / max(_numel(row.output_shapes[0]), 1)
    return per_out if cls == "depthwise" else per_out / max(row.input_shapes[0][1], 1)


def channel_padding(row: LayerStats, cls: str, block: int) -> float:
    """Work a SIMD kernel computing whole blocks of ``block`` channels does on a convolution, over its MACs:
    output channels rounded up to the block, and input channels too for a dense convolution with at least a block
    of them (fewer are read unblocked)."""
    if cls not in _CONV_CLASSES or not row.input_shapes or len(row.output_shapes[0]) < 3:
        return 1.0
    cin, cout = row.input_shapes[0][1], row.output_shapes[0][1]
    pad = -(-cout // block) * block / cout
    if cls not in ("depthwise", "depthwise_k5", "grouped") and cin >= block:
        pad *= -(-cin // block) * block / cin
    return pad


def _op_class(row: LayerStats, dilated: frozenset[str]) -> str:
    name = normalize_op(row.op)
    if name in _DECONV:
        return "deconv"
    if name in _MATMUL:
        return "matmul"
    if row.name in dilated:
        return "dilated"
    if name in _CONV or (row.macs > 0 and name.startswith("conv")):
        if not row.input_shapes or not row.output_shapes or len(row.input_shapes[0]) < 3:
            return "conv"
        cin, out = row.input_shapes[0][1], _numel(row.output_shapes[0])
        per_out = row.macs / max(out, 1)                  # = cin/groups x kernel area
        if per_out < 0.99 * cin:                          # grouped: one input channel per group (an odd square
            odd_square = round(per_out) in (1, 9, 25, 49, 81, 121)   # kernel area) is depthwise, else ResNeXt-like
            return "depthwise" if odd_square and abs(per_out - round(per_out)) < 1e-6 else "grouped"
        if per_out < 1.01 * cin:
            return "conv1x1"
        if cin < 16:
            return "conv_stem"                            # few input channels: the arrays run mostly idle
        strided = len(row.input_shapes[0]) == 4 and row.output_shapes[0][-1] < row.input_shapes[0][-1]
        return "conv_s2" if strided else "conv"
    if name in _NAME_CLASS:
        return _NAME_CLASS[name]
    if row.ops:                                           # a custom leaf module: by its heaviest underlying op
        inner = {_NAME_CLASS.get(normalize_op(o)) for o in row.ops} - {None, "reshape"}
        if row.macs > 0:
            return "matmul"
        if len(inner) == 1:
            return inner.pop()
    return "other"


@dataclass(frozen=True)
class Features:
    """What the latency model needs from one model at one input shape on one target (a calibration row's X)."""

    model: str
    roofline_ms: dict[str, float]          # per op class: summed per-layer roofline time
    compute_ms: dict[str, float]           # per op class: summed per-layer compute time (at peak)
    layers: int                            # executed layers (not folded into their producer)
    io_bytes: float                        # input + output tensors crossing the host<->device link
    spill_ms: float = 0.0                  # DRAM time of layers whose activations overflow on-chip memory
    rows: tuple[tuple[LayerLatency, str, bool], ...] = field(repr=False, default=())


def roofline(prof: Profile, target: Target, precision: str) -> list[LayerLatency]:
    """Per-layer roofline: compute = (2*MACs + element-wise ops) / peak; memory = traffic / usable bandwidth.
    The physics under every latency estimate (``targets.latency`` scales it per op class when calibrated)."""
    peak = target.peak_ops_per_s[precision]
    bandwidth = target.usable_bandwidth_gbps * 1e9
    return [LayerLatency(name=r.name, op=r.op, compute_ms=1e3 * (2 * r.macs + r.elem_ops) / peak,
                         memory_ms=1e3 * r.traffic_bytes / bandwidth) for r in prof.layers]


def features(prof: Profile, target: Target, precision: str, fused: frozenset[str],
             output_shapes: list[tuple[int, ...]] | None = None, io_bytes: tuple[float, float] = (1.0, 2.0),
             onchip_bytes: float | None = None, dilated: frozenset[str] = frozenset(),
             block: int | None = None) -> Features:
    """Per-class roofline sums, executed layers and I/O bytes of ``prof`` (``io_bytes``: bytes per input and per
    output element on the link; outputs default to the last layer's when not given). With ``onchip_bytes``
    (e.g. MyriadX's CMX), layers whose input + output activations do not fit there also count their DRAM
    traffic time as spill. With ``block`` (a host CPU's SIMD channel block) convolutions split by kernel size
    (``op_class``) and their compute counts the padded channel blocks (``channel_padding``)."""
    sums, compute = dict.fromkeys(OP_CLASSES, 0.0), dict.fromkeys(OP_CLASSES, 0.0)
    rows, executed, spill = [], 0, 0.0
    for stats, roof in zip(prof.layers, roofline(prof, target, precision)):
        cls = op_class(stats, dilated, block)
        if block and cls in _CONV_CLASSES:
            roof = LayerLatency(roof.name, roof.op, roof.compute_ms * channel_padding(stats, cls, block), roof.memory_ms)
        if cls in fused or cls == "reshape":
            rows.append((roof, cls, False))
            continue
        sums[cls] += roof.latency_ms
        compute[cls] += roof.compute_ms
        executed += 1
        spills = onchip_bytes is not None and stats.read_bytes + stats.write_bytes > onchip_bytes
        spill += roof.memory_ms if spills else 0.0
        rows.append((roof, cls, spills))
    outs = output_shapes if output_shapes is not None else (list(prof.layers[-1].output_shapes) if prof.layers else [])
    io = sum(_numel(s) for s in prof.input_shapes) * io_bytes[0] + sum(_numel(s) for s in outs) * io_bytes[1]
    return Features(prof.model, sums, compute, executed, io, spill, tuple(rows))


@dataclass(frozen=True)
class LatencyEstimate:
    """One model's latency on one target: best estimate, the expected-error band and where the time goes."""

    ms: float                 # best estimate per frame, end to end as the target defines it
    low_ms: float             # expected-error band from leave-one-out: low_ms <= truth <= high_ms for most models
    high_ms: float
    band: float               # relative half-width, e.g. 0.15 for "± 15%" (0 when uncalibrated: no band known)
    compute_ms: float         # sum of the per-layer times
    transfer_ms: float        # host <-> device I/O
    overhead_ms: float        # per-layer and per-inference fixed costs
    layers: list[LayerLatency]
    calibrated: bool          # False = plain roofline (the target has no calibration)
    target: str = ""
    model: str = ""
    conditions: str = ""      # what the calibration's measurements were taken under (shaves, threads, link...)
    notes: tuple[str, ...] = ()
    fps: float = 0.0          # frames per second under the calibration's conditions (threads in flight)
    fps_low: float = 0.0      # its range: the latency band and the spread of throughput x latency
    fps_high: float = 0.0
    pipelined: bool = False   # fps is a calibrated multi-thread throughput, not 1000 / ms

    def __post_init__(self) -> None:
        if not self.fps and self.ms > 0:              # one frame at a time
            object.__setattr__(self, "fps", 1e3 / self.ms)
            object.__setattr__(self, "fps_low", 1e3 / self.high_ms)
            object.__setattr__(self, "fps_high", 1e3 / self.low_ms if self.low_ms > 0 else math.inf)

    @property
    def text(self) -> str:
        """'18.9 ms ± 15%', '18.9 ms -20%/+35%' when the band is lopsided, or '18.9 ms (uncalibrated roofline)'."""
        if not self.calibrated:
            return f"{self.ms:.3g} ms (uncalibrated roofline)"
        low, high = 1 - self.low_ms / self.ms, self.high_ms / self.ms - 1
        if abs(low - high) < 0.005:
            return f"{self.ms:.3g} ms ± {high:.0%}"
        return f"{self.ms:.3g} ms -{low:.0%}/+{high:.0%}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (per-layer rows with their class factor and overhead)."""
        d = asdict(self)
        d["layers"] = [{**asdict(r), "latency_ms": r.latency_ms, "bound": r.bound} for r in self.layers]
        d["notes"], d["text"] = list(self.notes), self.text
        return d

    def __str__(self) -> str:
        return (f"{self.model} on {self.target}: {self.text} (range {self.low_ms:.3g}-{self.high_ms:.3g} ms; "
                f"compute {self.compute_ms:.3g}, transfer {self.transfer_ms:.3g}, overhead {self.overhead_ms:.3g})")


def estimate_latency(model_or_profile: Any, target: Target | str | os.PathLike[str], input_shape: Any = None,
                     precision: str | None = None, calibration: Calibration | None = None,
                     shaves: int | None = None) -> LatencyEstimate:
    """Latency of a model (nn.Module + ``input_shape``), an ``.onnx`` path or a Profile on ``target``, with the
    target's own calibration (or ``calibration``); a target without one gives the plain roofline
    (``calibrated=False``). ``shaves``: MyriadX blobs compiled for another SHAVE count than the calibration's
    (SHAVE-run op classes scale with it)."""
    from .calibration_store import target_calibration

    tgt = target if isinstance(target, Target) else Target.load(target)
    cal = calibration if calibration is not None else target_calibration(tgt)
    if calibration is not None and calibration.target != tgt.name:
        raise ConfigError(f"calibration {cal.target!r} does not belong to target {tgt.name!r}; "
                          f"calibrate {tgt.name} (edgedeploy targets calibrate {tgt.name} --from FILE.csv)")
    prof, outputs, dilated = profile_model(model_or_profile, input_shape, precision or (
        cal.precision if cal is not None else tgt.precisions[0]))
    prec = prof.precision if prof.precision in tgt.peak_ops_per_s else tgt.precisions[0]
    return estimate_from_profile(prof, tgt, prec, cal, outputs, shaves, dilated)


def estimate_from_profile(prof: Profile, tgt: Target, precision: str, cal: Calibration | None,
                          outputs: list[tuple[int, ...]] | None = None, shaves: int | None = None,
                          dilated: frozenset[str] = frozenset()) -> LatencyEstimate:
    """``estimate_latency`` on a profile already made (check() and calibrate() call this)."""
    notes: list[str] = []
    if cal is None:
        feats = features(prof, tgt, precision, frozenset(), outputs)
        layers = [roof for roof, _, _ in feats.rows]
        ms = sum(r.latency_ms for r in layers)
        return LatencyEstimate(ms, ms, ms, 0.0, ms, 0.0, 0.0, layers, False, tgt.name, prof.model,
                               notes=(_UNCALIBRATED,))
    if shaves is not None and (isinstance(shaves, bool) or not isinstance(shaves, int) or shaves < 1):
        raise ConfigError(f"shaves must be a positive int, got {shaves!r}")
    if precision != cal.precision:
        notes.append(f"calibrated at {cal.precision}; {precision} assumes the same efficiency at its peak rate")
    feats = features(prof, tgt, precision, cal.fused, outputs, cal.io_bytes, cal.onchip_bytes, dilated,
                     cal.channel_block)
    factor = cal.class_factors(shaves)
    spill = cal.coefficients.get("spill", 0.0)
    layer_ms, base_layer = cal.class_layer_ms(), cal.coefficients.get("per_layer_ms", 0.0)
    compute_only = cal.compute_classes
    layers = []
    for roof, cls, spills in feats.rows:
        executed = cls not in cal.fused and cls != "reshape"
        memory = 0.0 if cls in compute_only else roof.memory_ms     # e.g. SHAVE-run deconvolution: MAC-bound
        layers.append(LayerLatency(roof.name, roof.op, roof.compute_ms, memory, op_class=cls,
                                   factor=factor.get(cls, 0.0) if executed else 0.0,
                                   overhead_ms=(layer_ms.get(cls, base_layer) + (spill * roof.memory_ms if spills else 0.0))
                                   if executed else 0.0))
    compute = sum(r.factor * max(r.compute_ms, r.memory_ms) for r in layers)
    per_layer = sum(r.overhead_ms for r in layers)
    transfer = cal.transfer_ms(feats.io_bytes)
    fixed = cal.coefficients.get("fixed_ms", 0.0)
    ms = compute + per_layer + transfer + fixed
    if not math.isfinite(ms) or ms <= 0:
        raise ConfigError(f"latency estimate of {prof.model} on {tgt.name} is {ms}; the model has no layers the "
                          "calibration can time")
    if prof.unsupported:
        notes.append(f"ops counted as 0 MACs: {', '.join(sorted(prof.unsupported))}")
    low, high = cal.bounds
    lo_ms, hi_ms = ms * (1 - low), ms * (1 + high)
    k = cal.throughput or (1.0, 1.0, 1.0)
    return LatencyEstimate(ms, lo_ms, hi_ms, cal.band, compute, transfer, per_layer + fixed, layers, True, tgt.name,
                           prof.model, cal.conditions, tuple(notes), fps=k[1] * 1e3 / ms, fps_low=k[0] * 1e3 / hi_ms,
                           fps_high=k[2] * 1e3 / lo_ms if lo_ms > 0 else math.inf,
                           pipelined=cal.throughput is not None)


class Profiled(NamedTuple):
    """What the latency model reads from a model: its profile, output shapes and dilated convolutions."""

    profile: Profile
    outputs: list[tuple[int, ...]] | None       # None: unknown (the last layer's outputs stand in)
    dilated: frozenset[str]                     # profile rows whose convolution is dilated


def profile_model(obj: Any, input_shape: Any, precision: str) -> Profiled:
    """Profile a torch module (at ``input_shape``) or an ``.onnx`` file, with its outputs and dilated layers (a
    bare Profile has neither)."""
    if isinstance(obj, Profile):
        return Profiled(obj, None, frozenset())
    from ..metrics.profile import profile

    prof_prec = {"int16": "fp16", "int4": "int8"}.get(precision, precision)
    if precision not in PRECISION_BITS:
        raise ConfigError(f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISION_BITS)}")
    if isinstance(obj, (str, Path)):
        return Profiled(profile(obj, input_shape, precision=prof_prec), _onnx_outputs(Path(obj)), dilated_layers(obj))
    if input_shape is None:
        raise ConfigError("estimate_latency() needs input_shape (e.g. (1, 3, 224, 224)) for a torch model, "
                          "or pass a Profile from edgedeploy.profile()")
    return Profiled(profile(obj, input_shape, precision=prof_prec), _torch_outputs(obj, input_shape),
                    dilated_layers(obj))


def dilated_layers(model: Any) -> frozenset[str]:
    """Names of the dilated (atrous) convolutions of a torch module or an ONNX file, as profile rows name them."""
    if isinstance(model, (str, Path)):
        from ..onnx_utils import read_onnx

        return frozenset(n.name for n in read_onnx(model).graph.node if n.op_type == "Conv" and any(
            d > 1 for a in n.attribute if a.name == "dilations" for d in a.ints))
    import torch

    return frozenset(name for name, m in model.named_modules()
                     if isinstance(m, torch.nn.modules.conv._ConvNd) and not m.transposed and max(m.dilation) > 1)


def _torch_outputs(model: Any, input_shape: Any) -> list[tuple[int, ...]] | None:
    """Output shapes from one forward pass on meta tensors (no compute); None when the model cannot run there."""
    import copy

    import torch

    shapes = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
    try:
        meta = copy.deepcopy(model).to("meta").eval()
        with torch.no_grad():
            out = meta(*[torch.zeros(tuple(s), device="meta") for s in shapes])
    except Exception:  # noqa: BLE001 - data-dependent models: fall back to the last layer's outputs
        return None
    found: list[tuple[int, ...]] = []

    def walk(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            found.append(tuple(o.shape))
        elif isinstance(o, (list, tuple)):
            for x in o:
                walk(x)
        elif isinstance(o, dict):
            for x in o.values():
                walk(x)

    walk(out)
    return found or None


def _onnx_outputs(path: Path) -> list[tuple[int, ...]] | None:
    """Static output shapes declared by an ONNX graph (None when any is dynamic)."""
    from ..onnx_utils import read_onnx

    shapes = []
    for out in read_onnx(path).graph.output:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in out.type.tensor_type.shape.dim]
        if None in dims:
            return None
        shapes.append(tuple(dims))
    return shapes
