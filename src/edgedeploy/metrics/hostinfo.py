"""The host CPU: model name, core count and the int8/bf16 instruction-set flags that decide speed-ups."""
from __future__ import annotations

import os
import platform
import re
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


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def read_cpuinfo() -> str:
    """The text of /proc/cpuinfo ('' where there is none)."""
    return _read("/proc/cpuinfo")


def cpuinfo_field(cpuinfo: str, key: str) -> str:
    """The first value of ``key`` in /proc/cpuinfo text ('' when absent)."""
    m = re.search(rf"^{re.escape(key)}\s*:\s*(.*)$", cpuinfo, re.M)
    return m.group(1).strip() if m else ""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), the count every benchmark and estimate uses."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def memory_bytes() -> int:
    """Total RAM from /proc/meminfo (8 GiB when unknown)."""
    kb = re.search(r"MemTotal:\s+(\d+)\s*kB", _read("/proc/meminfo"))
    return int(kb.group(1)) * 1024 if kb else 8 * 2**30


def max_freq_khz_of_cpu0() -> int | None:
    """cpufreq's maximum clock of CPU 0 in kHz, when the kernel exposes it."""
    text = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").strip()
    return int(text) if text.isdigit() else None


@lru_cache(maxsize=1)
def host_info() -> HostInfo:
    """Read the CPU model and speed-relevant flags (Linux /proc/cpuinfo; falls back to platform)."""
    text = read_cpuinfo()
    model = cpuinfo_field(text, "model name") or platform.processor() or platform.machine()
    flags = set(cpuinfo_field(text, "flags").split())
    return HostInfo(model, usable_cores(), tuple(f for f in SPEED_FLAGS if f in flags), platform.machine())
