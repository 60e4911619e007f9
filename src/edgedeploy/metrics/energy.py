"""Energy per inference from the tutorial's 45 nm table (Horowitz, ISSCC 2014), with the memory assumption stated."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from .types import EnergyEstimate, LayerStats

# pJ per operation at 45 nm, as in the tutorial's quantization slide.
PJ_45NM: dict[str, float] = {
    "int8_add": 0.03, "int16_add": 0.05, "int32_add": 0.1,
    "fp16_add": 0.4, "fp32_add": 0.9,
    "int8_mult": 0.2, "int32_mult": 3.1,
    "fp16_mult": 1.1, "fp32_mult": 3.7,
    "sram_read_32b": 5.0,     # 32-bit read from an 8 KB SRAM
    "dram_read_32b": 640.0,   # 32-bit read from DRAM
}

# (multiply, accumulate) per precision. int8 MACs accumulate in 32-bit integers, as int8 kernels do.
MAC_PARTS: dict[str, tuple[str, str]] = {
    "fp32": ("fp32_mult", "fp32_add"),
    "fp16": ("fp16_mult", "fp16_add"),
    "bf16": ("fp16_mult", "fp16_add"),   # the table has no bf16 row; fp16 is the closest 16-bit float
    "int8": ("int8_mult", "int32_add"),
}
ELEM_OP: dict[str, str] = {"fp32": "fp32_add", "fp16": "fp16_add", "bf16": "fp16_add", "int8": "int8_add"}


@dataclass(frozen=True)
class EnergyConfig:
    """Where tensors live and how much each access costs.

    Default assumption: weights are read once per inference from DRAM (they do not fit on chip);
    a layer's activations are read/written in on-chip SRAM when the layer's activation traffic fits
    ``sram_bytes``, otherwise in DRAM. Writes cost as much as reads (the table lists reads only).
    """

    weights_in: str = "dram"                 # "dram" | "sram"
    activations_in: str = "auto"             # "auto" (by sram_bytes) | "sram" | "dram"
    sram_bytes: int = 2_500_000              # on-chip buffer; default: MyriadX's 2.5 MB CMX
    table: dict[str, float] = field(default_factory=lambda: dict(PJ_45NM))

    def __post_init__(self) -> None:
        if self.weights_in not in ("dram", "sram"):
            raise ConfigError(f"EnergyConfig.weights_in must be 'dram' or 'sram', got {self.weights_in!r}")
        if self.activations_in not in ("auto", "dram", "sram"):
            raise ConfigError(f"EnergyConfig.activations_in must be 'auto', 'sram' or 'dram', got {self.activations_in!r}")

    def describe(self) -> str:
        """One sentence stating the memory assumption."""
        acts = (f"in SRAM for layers whose activations fit {self.sram_bytes / 1e6:.2f} MB, else DRAM"
                if self.activations_in == "auto" else f"in {self.activations_in.upper()}")
        return (f"45 nm pJ table; weights read once from {self.weights_in.upper()}; activations {acts}; "
                "32-bit words; writes cost as reads")


def estimate_energy(layers: list[LayerStats], precision: str, config: EnergyConfig | None = None) -> EnergyEstimate:
    """Energy per inference (µJ): MACs and element ops at ``precision`` plus memory accesses per the config."""
    cfg = config or EnergyConfig()
    if precision not in MAC_PARTS:
        raise ConfigError(f"no energy figures for precision {precision!r}; choose one of {sorted(MAC_PARTS)}")
    t = cfg.table
    mult, add = MAC_PARTS[precision]
    compute = sum(r.macs for r in layers) * (t[mult] + t[add]) + sum(r.elem_ops for r in layers) * t[ELEM_OP[precision]]
    sram = dram = 0.0
    for r in layers:
        w_words = r.weight_bytes / 4
        a_words = (r.read_bytes + r.write_bytes) / 4
        if cfg.weights_in == "dram":
            dram += w_words * t["dram_read_32b"]
        else:
            sram += w_words * t["sram_read_32b"]
        on_chip = cfg.activations_in == "sram" or (
            cfg.activations_in == "auto" and r.read_bytes + r.write_bytes <= cfg.sram_bytes)
        if on_chip:
            sram += a_words * t["sram_read_32b"]
        else:
            dram += a_words * t["dram_read_32b"]
    return EnergyEstimate(compute_uj=compute * 1e-6, sram_uj=sram * 1e-6, dram_uj=dram * 1e-6, assumption=cfg.describe())
