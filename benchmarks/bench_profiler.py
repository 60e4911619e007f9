"""Profile ResNet-50, MobileNetV2 and ViT-S/16 with edgedeploy and with peer counters (fvcore, ptflops) in one run.

Ours traces on meta tensors (shapes only, no arithmetic; the commonest ops' shapes computed directly so no
torch._dynamo/sympy import); the peers run the real forward pass, whose cost grows with the input. Printed for
each model at 224x224 and at a 720p camera frame: warm median time, the first call in a fresh process (after
``import torch`` and building the model, so the fixed costs a user pays once are counted), MAC totals side by side.

Goal (issue 16): no slower than ptflops at every size on the three models, and a first call <= 0.5 s, with every
per-layer metric (memory, traffic, energy) still computed. Conventions: our MACs count conv/linear/matmul/attention
multiply-accumulates; fvcore's "flops" count one fused multiply-add as one flop and add batch-norm and pooling;
ptflops' aten backend counts conv + mm. We compare fvcore restricted to its conv/linear/matmul operators.
"""
from __future__ import annotations

import logging
import subprocess
import sys

import torch
from _common import banner, best_of, save

from edgedeploy.metrics.profile import profile
from edgedeploy.zoo.reference import MobileNetV2, ResNet50, ViTSmall16

LINEAR_OPS = {"conv", "linear", "addmm", "matmul", "bmm", "mm", "einsum", "scaled_dot_product_attention"}
MODELS = {"resnet50": "ResNet50", "mobilenetv2": "MobileNetV2", "vit-s16": "ViTSmall16"}
CALLS = {
    "ours": "from edgedeploy.metrics.profile import profile\nf = lambda: profile(m, x).totals()",
    "ptflops": ("from ptflops import get_model_complexity_info\n"
                "f = lambda: get_model_complexity_info(m, tuple(x.shape[1:]), as_strings=False, backend='aten', "
                "print_per_layer_stat=False, verbose=False)"),
    "fvcore": ("from fvcore.nn import FlopCountAnalysis\n"
               "f = lambda: FlopCountAnalysis(m, x).unsupported_ops_warnings(False)"
               ".uncalled_modules_warnings(False).total()"),
}


def ours(model: torch.nn.Module, x: torch.Tensor) -> int:
    return profile(model, x).macs


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


def first_call(tool: str, model: str, h: int, w: int) -> float:
    """Seconds of the first call in a fresh process (torch imported and the model built beforehand)."""
    code = (f"import time, logging, torch\nlogging.disable(logging.WARNING)\ntorch.set_num_threads(2)\n"
            f"from edgedeploy.zoo.reference import {MODELS[model]} as B\nm = B().eval()\n"
            f"x = torch.randn(1, 3, {h}, {w})\n{CALLS[tool]}\nt0 = time.perf_counter()\nf()\n"
            "print(time.perf_counter() - t0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    host = banner("profiler: edgedeploy vs fvcore vs ptflops")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    torch.set_num_threads(2)
    results = []
    builders = {"resnet50": ResNet50, "mobilenetv2": MobileNetV2, "vit-s16": ViTSmall16}
    for name, build in builders.items():
        for h, w in ((224, 224), (720, 1280)):
            if name == "vit-s16" and h != 224:
                continue        # a ViT's position table fixes its input size
            model, x = build().eval(), torch.randn(1, 3, h, w)
            row: dict = {"model": name, "input": f"{h}x{w}"}
            row["ours_s"], row["ours_macs"] = best_of(lambda: ours(model, x))
            row["fvcore_s"], (row["fvcore_total"], row["fvcore_linear"]) = best_of(lambda: fvcore_macs(model, x),
                                                                                   repeats=3)
            row["ptflops_s"], row["ptflops_macs"] = best_of(lambda: ptflops_macs(model, x), repeats=3)
            for tool in CALLS:
                row[f"{tool}_first_s"] = first_call(tool, name, h, w)
            results.append(row)
            tag = f"{name}@{h}x{w}"
            print(f"\n{tag}: MACs  ours {row['ours_macs'] / 1e9:.4f} G | fvcore conv+linear+matmul "
                  f"{row['fvcore_linear'] / 1e9:.4f} G (all ops {row['fvcore_total'] / 1e9:.4f} G) | "
                  f"ptflops(aten) {row['ptflops_macs'] / 1e9:.4f} G")
            print(f"{tag}: warm  ours {row['ours_s'] * 1e3:.0f} ms | fvcore {row['fvcore_s'] * 1e3:.0f} ms | "
                  f"ptflops {row['ptflops_s'] * 1e3:.0f} ms  -> x{row['ptflops_s'] / row['ours_s']:.2f} vs ptflops, "
                  f"x{row['fvcore_s'] / row['ours_s']:.2f} vs fvcore")
            print(f"{tag}: first call (fresh process)  ours {row['ours_first_s']:.2f} s | fvcore "
                  f"{row['fvcore_first_s']:.2f} s | ptflops {row['ptflops_first_s']:.2f} s")
    slower = [f"{r['model']}@{r['input']}" for r in results if r["ours_s"] > r["ptflops_s"]]
    worst_first = max(r["ours_first_s"] for r in results)
    print(f"\ngoal: no slower than ptflops everywhere: {'met' if not slower else 'missed on ' + ', '.join(slower)}; "
          f"first call <= 0.5 s: {'met' if worst_first <= 0.5 else 'missed'} (worst {worst_first:.2f} s)")
    save("profiler", {"host": host, "results": results})


if __name__ == "__main__":
    main()
