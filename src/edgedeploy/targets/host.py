"""This host's CPU as a target: peak ops/s per precision from its flags, cores and clock (estimates)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import TargetError
from ..metrics.hostinfo import cpuinfo_field, max_freq_khz_of_cpu0, memory_bytes, read_cpuinfo, usable_cores
from .units import PRECISION_BITS


def host_estimate(host: Any, path: Path | str = "cpu.yaml", cpuinfo: str | None = None,
                  cores: int | None = None, mem_bytes: int | None = None,
                  max_freq_khz: int | None = None) -> dict[str, Any]:
    """Estimate this CPU's peak ops/s per precision, DRAM bandwidth and memory from its flags, cores and clock."""
    if not isinstance(host, dict) or not isinstance(host.get("ops_per_cycle_per_core"), list):
        raise TargetError(f"target file {path}: field 'host' must hold an 'ops_per_cycle_per_core' list")
    cpuinfo = read_cpuinfo() if cpuinfo is None else cpuinfo
    flags = set(cpuinfo_field(cpuinfo, "flags").split()) or set(cpuinfo_field(cpuinfo, "Features").split())
    model = cpuinfo_field(cpuinfo, "model name") or cpuinfo_field(cpuinfo, "Hardware") or "unknown CPU"
    if cores is None:
        cores = usable_cores()
    ghz, clock_src = _clock_ghz(cpuinfo, host, path, max_freq_khz)
    per_cycle: dict[str, float] = {}
    used: dict[str, str] = {}
    for row in host["ops_per_cycle_per_core"]:
        if not isinstance(row, dict) or row.get("precision") not in PRECISION_BITS \
                or not isinstance(row.get("ops"), int | float):
            raise TargetError(f"target file {path}: field 'host.ops_per_cycle_per_core' row {row!r} needs "
                              "flag, precision (one of " + ", ".join(PRECISION_BITS) + ") and ops")
        prec, flag = row["precision"], row.get("flag")
        if prec not in per_cycle and (flag is None or flag in flags):
            per_cycle[prec] = float(row["ops"])
            used[prec] = flag or "none"
    if mem_bytes is None:
        mem_bytes = memory_bytes()
    gbps_core = host.get("dram_gbps_per_core", 10.0)
    if isinstance(gbps_core, bool) or not isinstance(gbps_core, int | float) or gbps_core <= 0:
        raise TargetError(f"target file {path}: field 'host.dram_gbps_per_core' must be a positive number")
    order = [p for p in PRECISION_BITS if p in per_cycle]
    return {
        "description": f"this host: {model}, {cores} cores at {ghz:.2f} GHz (peak figures are estimates)",
        "precisions": order,
        "peak_ops_per_s": {p: per_cycle[p] * cores * ghz * 1e9 for p in order},
        "memory_bandwidth_gbps": float(gbps_core) * cores,
        "memory_bytes": mem_bytes,
        "extras": {"cpu_model": model, "cores": cores, "clock_ghz": round(ghz, 3), "clock_source": clock_src,
                   "ops_per_cycle_per_core": {p: per_cycle[p] for p in order},
                   "from_flags": {p: used[p] for p in order}, "estimate": True},
    }


def _clock_ghz(cpuinfo: str, host: dict[str, Any], path: Path | str,
               max_freq_khz: int | None) -> tuple[float, str]:
    if max_freq_khz is None:
        max_freq_khz = max_freq_khz_of_cpu0()
    if max_freq_khz:
        return max_freq_khz / 1e6, "cpufreq cpuinfo_max_freq"
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)]
    if mhz and max(mhz) > 0:
        return max(mhz) / 1e3, "/proc/cpuinfo cpu MHz"
    default = host.get("clock_ghz", 2.0)
    if isinstance(default, bool) or not isinstance(default, int | float) or default <= 0:
        raise TargetError(f"target file {path}: field 'host.clock_ghz' must be a positive number of GHz")
    return float(default), "host.clock_ghz default"
