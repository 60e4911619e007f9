"""Profile a ResNet-50 with edgedeploy and with peer counters (fvcore, ptflops) in one run.

Ours traces on FakeTensors (a fixed cost of converting the weights, no arithmetic); the peers run the real
forward pass, whose cost grows with the input: at 224x224 ptflops' cheap hooks can win, at camera
resolutions tracing wins. Both regimes are printed.

Prints wall time (first call and warm median) and MAC totals side by side. Conventions: our MACs
count conv/linear/matmul/attention multiply-accumulates; fvcore's "flops" count one fused
multiply-add as one flop and add batch-norm (1 per element) and pooling; ptflops' aten backend counts
exactly conv + mm. We therefore compare fvcore restricted to its conv/linear/matmul operators.
"""
from __future__ import annotations

import logging
import time

import torch
from _common import banner, best_of, save

from edgedeploy.metrics.profile import ProfileConfig, profile
from edgedeploy.zoo.reference import MobileNetV2, ResNet50

LINEAR_OPS = {"conv", "linear", "addmm", "matmul", "bmm", "mm", "einsum"}


def ours(model: torch.nn.Module, x: torch.Tensor, execute: str = "fake") -> int:
    return profile(model, x, config=ProfileConfig(execute=execute)).macs


def fvcore_macs(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = fca.by_operator()
    return int(fca.total()), int(sum(v for k, v in by_op.items() if k in LINEAR_OPS))


def ptflops_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(x.shape[1:]), as_strings=False, backend="aten",
                                        print_per_layer_stat=False, verbose=False)
    return int(macs)


def main() -> None:
    host = banner("profiler: edgedeploy vs fvcore vs ptflops")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    torch.set_num_threads(2)
    results = []
    # 224x224 (the published totals) and a 720p camera frame, where real execution costs far more than tracing
    cases = (("resnet50", ResNet50, 224, 224), ("mobilenetv2", MobileNetV2, 224, 224), ("resnet50@720p", ResNet50, 720, 1280))
    for name, build, h, w in cases:
        model, x = build().eval(), torch.randn(1, 3, h, w)
        row: dict = {"model": name}
        t0 = time.perf_counter()
        row["ours_macs"] = ours(model, x)
        row["ours_first_s"] = time.perf_counter() - t0
        row["ours_s"], _ = best_of(lambda: ours(model, x))
        row["ours_real_s"], _ = best_of(lambda: ours(model, x, "real"), repeats=3)
        row["fvcore_s"], (row["fvcore_total"], row["fvcore_linear"]) = best_of(lambda: fvcore_macs(model, x), repeats=3)
        row["ptflops_s"], row["ptflops_macs"] = best_of(lambda: ptflops_macs(model, x), repeats=3)
        results.append(row)
        print(f"\n{name}: MACs  ours {row['ours_macs'] / 1e9:.4f} G | fvcore conv+linear "
              f"{row['fvcore_linear'] / 1e9:.4f} G (all ops {row['fvcore_total'] / 1e9:.4f} G) | "
              f"ptflops(aten) {row['ptflops_macs'] / 1e9:.4f} G")
        print(f"{name}: diff vs fvcore {100 * (row['ours_macs'] / row['fvcore_linear'] - 1):+.3f}% | "
              f"vs ptflops {100 * (row['ours_macs'] / row['ptflops_macs'] - 1):+.3f}%")
        print(f"{name}: time  ours {row['ours_s'] * 1e3:.1f} ms warm (first call {row['ours_first_s']:.2f} s, "
              f"real execution {row['ours_real_s'] * 1e3:.0f} ms) | fvcore {row['fvcore_s'] * 1e3:.0f} ms | "
              f"ptflops {row['ptflops_s'] * 1e3:.0f} ms")
        print(f"{name}: speed-up  x{row['fvcore_s'] / row['ours_s']:.1f} vs fvcore, "
              f"x{row['ptflops_s'] / row['ours_s']:.1f} vs ptflops")
    save("profiler", {"host": host, "results": results})


if __name__ == "__main__":
    main()
