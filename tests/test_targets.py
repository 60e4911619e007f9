"""Target profiles: shipped figures, this host's CPU estimate, user YAML files and every malformed-YAML error."""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from edgedeploy.errors import TargetError
from edgedeploy.targets.host import host_estimate
from edgedeploy.targets.target import PROFILES_DIR, Target, available_targets, normalize_op

MYRIADX_YAML = (PROFILES_DIR / "myriadx.yaml").read_text()


def test_shipped_targets_are_listed_and_load():
    names = available_targets()
    assert {"cpu", "myriadx", "qualcomm-htp"} <= set(names)
    assert not [n for n in names if n.endswith("_ops")]          # op lists beside them are not targets
    for name in names:
        t = Target.load(name)
        assert t.name == name
        assert set(t.precisions) <= set(t.peak_ops_per_s)
        assert t.usable_bandwidth_gbps <= t.memory_bandwidth_gbps
        assert 0 < t.usable_memory_bytes <= t.memory_bytes


def test_myriadx_figures_from_the_tutorial():
    t = Target.load("myriadx")
    assert t.precisions == ("fp16",)                    # "support only FP16 bit widths"
    assert t.latency_budget_ms == (24.0, 30.0)          # "24 ms to 30 ms"
    assert t.min_fps == 27                              # Teams/Zoom certification
    assert t.extras["shaves"] == 16
    assert t.extras["cmx_bytes"] == int(2.5 * 1024 * 1024)
    assert t.memory_bytes == 512 * 2**20
    assert t.peak_ops_per_s["fp16"] == pytest.approx(1e12)
    assert t.usable_bandwidth_gbps == pytest.approx(t.memory_bandwidth_gbps * t.bandwidth_share)
    assert t.bandwidth_share < 1                        # memory is shared with other processes
    for op in ("Conv2d", "BatchNorm2d", "ReLU", "cat", "pixel_shuffle", "PixelShuffle", "upsample_nearest2d"):
        assert t.supports_op(op), op
    for op in ("grid_sampler_2d", "grid_sampler", "GroupNorm", "Hardswish"):
        assert not t.supports_op(op), op
    # ONNX op types come from the measured list in myriadx_ops.yaml
    import yaml

    measured = yaml.safe_load((PROFILES_DIR / "myriadx_ops.yaml").read_text())["supported"]
    assert t.supported_onnx_ops == frozenset(normalize_op(o) for o in measured)
    assert t.supports_op("DepthToSpace", onnx=True) and t.supports_op("Erf", onnx=True)
    assert not t.supports_op("GridSample", onnx=True) and not t.supports_op("HardSigmoid", onnx=True)


def test_qualcomm_htp_figures():
    t = Target.load("qualcomm-htp")
    assert {"int8", "int16", "fp16"} == set(t.precisions)
    assert t.peak_ops_per_s["int8"] > t.peak_ops_per_s["fp16"] > t.peak_ops_per_s["int16"]
    assert t.memory_bandwidth_gbps == pytest.approx(9600e6 * 8 / 1e9)     # LPDDR5X 4800 MHz, 64-bit bus
    assert t.supports_op("grid_sampler") and t.supports_op("GridSample", onnx=True)


@pytest.mark.parametrize("name", ["myriadx", "qualcomm-htp", "cpu"])
def test_every_figure_carries_a_source_comment(name):
    lines = (PROFILES_DIR / f"{name}.yaml").read_text().splitlines()
    numeric = re.compile(r"^\s*-?\s*\{?\s*[\w-]+:\s*\{?\s*(min:\s*)?-?[\d.]+(e[+-]?\d+)?\b")
    for i, line in enumerate(lines):
        if not numeric.match(line):
            continue
        has_comment = "#" in line or (i > 0 and lines[i - 1].lstrip().startswith("#"))   # inline or just above
        assert has_comment, f"{name}.yaml line {i + 1} has a figure without a source comment: {line.strip()}"


def test_cpu_target_describes_this_host():
    t = Target.load("cpu")
    cores = len(os.sched_getaffinity(0))
    assert t.extras["cores"] == cores
    model = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    if model:
        assert t.extras["cpu_model"] == model.group(1).strip()
        assert model.group(1).strip() in t.description
    assert "estimate" in t.description and t.extras["estimate"] is True
    for prec in t.precisions:                          # peak = ops/cycle/core x cores x clock
        expected = t.extras["ops_per_cycle_per_core"][prec] * cores * t.extras["clock_ghz"] * 1e9
        assert t.peak_ops_per_s[prec] == pytest.approx(expected, rel=1e-3)
    assert t.supported_ops is None and t.supports_op("anything_at_all")
    assert t.latency_budget_ms is None and t.min_fps is None


def _host_cfg():
    import yaml

    return yaml.safe_load((PROFILES_DIR / "cpu.yaml").read_text())["host"]


def test_host_estimate_from_cpu_flags():
    amx = "model name\t: Intel Xeon 8480+\nflags\t\t: sse2 fma avx2 avx512f avx512_vnni avx512_bf16 amx_int8 amx_bf16\n"
    est = host_estimate(_host_cfg(), cpuinfo=amx, cores=4, mem_bytes=2**30, max_freq_khz=2_000_000)
    assert est["peak_ops_per_s"]["int8"] == pytest.approx(2048 * 4 * 2.0e9)   # AMX beats VNNI
    assert est["peak_ops_per_s"]["bf16"] == pytest.approx(1024 * 4 * 2.0e9)
    assert est["peak_ops_per_s"]["fp32"] == pytest.approx(64 * 4 * 2.0e9)
    assert est["memory_bandwidth_gbps"] == pytest.approx(4 * _host_cfg()["dram_gbps_per_core"])
    assert est["memory_bytes"] == 2**30 and "Xeon 8480+" in est["description"]

    avx2 = "model name\t: old\nflags\t\t: sse2 fma avx2\ncpu MHz\t\t: 3000.000\n"
    est = host_estimate(_host_cfg(), cpuinfo=avx2, cores=2, mem_bytes=2**30, max_freq_khz=0)
    assert est["precisions"] == ["fp32", "fp16", "int8"]
    assert est["peak_ops_per_s"]["fp32"] == pytest.approx(32 * 2 * 3.0e9)
    assert est["extras"]["clock_source"] == "/proc/cpuinfo cpu MHz"

    arm = "Hardware\t: some board\nFeatures\t: fp asimd\n"      # no x86 flags, no clock: fallbacks
    est = host_estimate(_host_cfg(), cpuinfo=arm, cores=1, mem_bytes=2**30, max_freq_khz=0)
    assert est["peak_ops_per_s"] == {"fp32": pytest.approx(8 * _host_cfg()["clock_ghz"] * 1e9)}


def test_user_yaml_by_path(tmp_path):
    path = tmp_path / "mycam.yaml"
    path.write_text(MYRIADX_YAML.replace("name: myriadx", "name: mycam").replace("min_fps: 27", "min_fps: 60"))
    t = Target.load(path)
    assert t.name == "mycam" and t.min_fps == 60 and t.source == str(path)
    assert Target.load(str(path)) == t and len({t, Target.load(path)}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.min_fps = 1  # type: ignore[misc]
    assert t.to_dict()["latency_budget_ms"] == [24.0, 30.0]


def test_unknown_target_lists_valid_names():
    with pytest.raises(TargetError, match="unknown target 'myriad'.*cpu, myriadx, qualcomm-htp") as err:
        Target.load("myriad")
    assert isinstance(err.value, ValueError)
    with pytest.raises(TargetError, match="does not exist"):
        Target.load("/nonexistent/cam.yaml")


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda s: s.replace("min_fps: 27", "min_fps: [27"), r"not valid YAML at line \d+"),
    (lambda s: re.sub(r"^memory_bytes:.*$", "", s, flags=re.M), r"field 'memory_bytes' is missing"),
    (lambda s: s.replace("memory_bytes: 536870912", "memory_bytes: lots"), r"field 'memory_bytes' must be"),
    (lambda s: s.replace("precisions: [fp16]", "precisions: [fp17]"), r"field 'precisions' has unknown precision 'fp17'"),
    (lambda s: s.replace("precisions: [fp16]", "precisions: [fp16, int8]"), r"field 'peak_ops_per_s' has no figure.*int8"),
    (lambda s: s.replace("bandwidth_share: 0.5", "bandwidth_share: 1.5"), r"field 'bandwidth_share' must be <= 1"),
    (lambda s: s.replace("{min: 24, max: 30}", "{min: 40, max: 30}"), r"field 'latency_budget_ms' has min"),
    (lambda s: s.replace("{min: 24, max: 30}", "30"), r"field 'latency_budget_ms' must be"),
    (lambda s: s.replace("min_fps: 27", "min_fps: 27\nmin_fsp: 30"), r"field 'min_fsp' is not a target field"),
    (lambda s: s.replace("supported_ops: [", "supported_ops: [3, "), r"field 'supported_ops' must be a list"),
    (lambda s: "- just\n- a list\n", r"must be a mapping of fields"),
    (lambda s: s.replace("supported_onnx_ops: myriadx_ops.yaml", "supported_onnx_ops: absent_ops.yaml"),
     r"field 'supported_onnx_ops' names absent_ops.yaml"),
])
def test_malformed_yaml_names_file_and_field(tmp_path, edit, pattern):
    path = tmp_path / "broken.yaml"
    path.write_text(edit(MYRIADX_YAML))
    with pytest.raises(TargetError, match=pattern) as err:
        Target.load(path)
    assert str(path) in str(err.value)


def test_normalize_op_matches_spellings():
    assert normalize_op("ReLU") == normalize_op("relu_") == normalize_op("aten.relu.default") == "relu"
    assert normalize_op("BatchNorm2d") == "batchnorm2d"
    assert normalize_op("dec/grid_sampler_2d") == "gridsampler2d"
