"""The host CPU: model name, core count and the int8/bf16 instruction-set flags that decide speed-ups."""
from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

# Flags that change int8 / bf16 / fp16 throughput on x86 (from /proc/cpuinfo).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
               "amx_tile", "amx_int8", "amx_bf16", "amx_fp16")


@dataclass(frozen=True)
class HostInfo:
    """What benchmarks print so results from different machines are never compared blindly."""

    cpu_model: str
    cores: int
    flags: tuple[str, ...]     # the SPEED_FLAGS this CPU has
    machine: str

    @property
    def int8_accel(self) -> str:
        """Best int8 path: AMX > VNNI > plain AVX2/AVX-512."""
        f = set(self.flags)
        return "amx_int8" if "amx_int8" in f else "vnni" if f & {"avx512_vnni", "avx_vnni"} else "none"

    @property
    def bf16_accel(self) -> str:
        """Best bf16 path: AMX > AVX-512 BF16 > none."""
        f = set(self.flags)
        return "amx_bf16" if "amx_bf16" in f else "avx512_bf16" if "avx512_bf16" in f else "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict including the derived accelerations."""
        return {**asdict(self), "int8_accel": self.int8_accel, "bf16_accel": self.bf16_accel}

    def __str__(self) -> str:
        return (f"{self.cpu_model} ({self.cores} cores) | int8: {self.int8_accel} | bf16: {self.bf16_accel} | "
                f"flags: {' '.join(self.flags) or '-'}")


@lru_cache(maxsize=1)
def host_info() -> HostInfo:
    """Read the CPU model and speed-relevant flags (Linux /proc/cpuinfo; falls back to platform)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = val.strip()
                elif key == "flags":
                    flags = set(val.split())
                if model and flags:
                    break
    except OSError:
        pass
    return HostInfo(model, os.cpu_count() or 1, tuple(f for f in SPEED_FLAGS if f in flags), platform.machine())
