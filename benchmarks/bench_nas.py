"""Hardware-aware NAS on the real digits, side by side in one run on this CPU:

1. a 30-trial NSGA-II search (configs/nas/digits.yaml: accuracy after 2 epochs vs latency measured on ONNX Runtime,
   MyriadX constraints) and its chosen architecture against the hand-designed digits CNN of the zoo (accuracy on
   the untouched test split, measured latency on ONNX Runtime and OpenVINO, MACs, params);
2. the same budget with TPE and with random search: hypervolume of each front on common bounds;
3. the latency predictor (the cpu target's latency model fitted to sampled architectures): share of >= 50 held-out
   architectures within +-10 % and Kendall tau, beside the plain roofline and the test-retest noise of the
   measurement itself;
4. throughput of 1 vs 2 workers sharing one study on a PostgreSQL server on loopback.

The search sees only the training split (a quarter of it held out for validation); the test split is used once,
for the final comparison. Usage: python benchmarks/bench_nas.py [--trials 30] [--seeds 0] [--skip-workers]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from _common import ROOT, banner, save
from rich.console import Console
from rich.table import Table

from edgedeploy.blocks.reparam import deploy_form
from edgedeploy.compress.nas import Arch, build_model, load_config, nas
from edgedeploy.compress.nas.predictor import (
    PredictorConfig,
    calibrate_predictor,
    export_candidate,
    time_onnx,
)
from edgedeploy.compress.nas.result import IDEAL, hypervolume, losses
from edgedeploy.compress.nas.storage import study_trials
from edgedeploy.compress.nas.train import top1, train
from edgedeploy.metrics.profile import profile
from edgedeploy.zoo.digits import DigitsCNN, load_digits_data, train_classifier

console = Console(width=200)
CONFIG = ROOT / "configs" / "nas" / "digits.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}      # worker processes: one core each


def measure(model: torch.nn.Module, shape: tuple[int, ...], folder: Path, repeats: int = 300) -> dict[str, float]:
    """Fastest ms on ONNX Runtime and OpenVINO (1 thread) of the deploy form, MACs and params."""
    deployed = deploy_form(model.eval())[0]
    onnx = export_candidate(deployed, shape, folder)
    prof = profile(deployed, shape)
    return {"onnxruntime_ms": time_onnx(onnx, shape, "onnxruntime", repeats)["ms"],
            "openvino_ms": time_onnx(onnx, shape, "openvino", repeats)["ms"], "macs": prof.macs, "params": prof.params}


def searches(trials: int, seeds: list[int], data: Any, work: Path) -> dict[str, list[Any]]:
    """The same budget with NSGA-II, TPE and random sampling (one search per sampler and seed)."""
    out: dict[str, list[Any]] = {}
    for sampler in ("nsga2", "tpe", "random"):
        for seed in seeds:
            cfg = load_config(CONFIG, trials=trials, sampler=sampler, seed=seed, study=f"bench-{sampler}-{seed}")
            if sampler != "nsga2" or seed != seeds[0]:
                cfg = replace(cfg, final_epochs=0)          # only the main search builds its chosen architecture
            t0 = time.perf_counter()
            result = nas(cfg, out=work / f"{sampler}-{seed}", train_data=data.train)
            result.seconds = time.perf_counter() - t0
            out.setdefault(sampler, []).append(result)
            console.print(f"{sampler} seed {seed}: {result.counts} in {result.seconds:.0f} s "
                          f"(hypervolume on its own bounds {result.hypervolume[-1]['hypervolume']:.4f})")
    return out


def common_hypervolumes(runs: dict[str, list[Any]]) -> dict[str, list[float]]:
    """Hypervolume of every search on one normalization: ideal (100 %, 0 ms) to the worst trial of all searches."""
    objectives = next(iter(runs.values()))[0].objectives
    rows = [t for rs in runs.values() for r in rs for t in r.trials if t.state == "COMPLETE"]
    worst = [max(c) for c in zip(*losses(rows, objectives))]
    ideal = [IDEAL[o] for o in objectives]
    return {s: [hypervolume(r.trials, objectives, ideal, worst) for r in rs] for s, rs in runs.items()}


def versus_hand_designed(result: Any, work: Path) -> list[dict[str, Any]]:
    """The chosen (knee) and most accurate front members vs the zoo's digits CNN, each trained 8 epochs on the
    whole training split and measured on the test split."""
    rows = []
    front = result.front
    best_acc = max(front, key=lambda t: t.values["accuracy"])
    picks = [("NAS chosen (knee)", result.trial(result.chosen)), ("NAS most accurate", best_acc)]
    for name, trial in picks:
        arch = Arch.from_dict(trial.arch)
        d = load_digits_data(size=arch.resolution)
        model = build_model(arch, seed=0)
        train(model, (d.x_train, d.y_train, d.x_test, d.y_test), 8)
        rows.append({"model": name, "arch": arch.key, "trial": trial.number, "input": arch.resolution,
                     "top1": top1(model, d.x_test, d.y_test),
                     **measure(model, arch.input_shape, work / name.split()[1])})
    d16 = load_digits_data(size=16)
    for name, recipe in (("digits CNN (zoo recipe)", "zoo"), ("digits CNN (NAS recipe)", "nas")):
        torch.manual_seed(0)
        cnn = DigitsCNN()
        if recipe == "zoo":
            train_classifier(cnn, d16, epochs=8, seed=0)
        else:
            train(cnn, (d16.x_train, d16.y_train, d16.x_test, d16.y_test), 8)
        rows.append({"model": name, "arch": "zoo digits-cnn (width 16)", "trial": None, "input": 16,
                     "top1": top1(cnn, d16.x_test, d16.y_test), **measure(cnn, (1, 1, 16, 16), work / recipe)})
    return rows


def predictor(work: Path) -> dict[str, Any]:
    """The cpu latency model fitted per runtime on 60 sampled archs, judged on 50 held-out ones; test-retest noise."""
    from scipy.stats import kendalltau

    space = load_config(CONFIG).space
    out = {}
    for rt in ("onnxruntime", "openvino"):
        t0 = time.perf_counter()
        rep = calibrate_predictor(space, PredictorConfig(runtime=rt, archs=60, held_out=50), out=work / f"cal-{rt}")
        seconds = time.perf_counter() - t0
        console.print(rep)
        files = sorted((work / f"cal-{rt}" / "onnx").glob("*/candidate.onnx"))[60:]
        again = [time_onnx(f, tuple(r["input_shape"]), rt, 100)["ms"] for f, r in zip(files, rep.rows)]
        first = [r["measured_ms"] for r in rep.rows]
        errs = [abs(b / a - 1) for a, b in zip(first, again)]
        out[rt] = {"held_out": len(rep.rows), "fit": rep.fit_rows, "within_10pct": rep.within_10pct,
                   "structure": rep.structure, "loo_within_10pct_by_structure": rep.loo_within_10pct,
                   "kendall_tau": rep.kendall_tau, "mean_abs_error_pct": rep.mean_abs_error_pct,
                   "roofline": rep.roofline, "loo_band": rep.band, "seconds": seconds,
                   "retest_within_10pct": sum(e <= 0.1 for e in errs) / len(errs),
                   "retest_kendall_tau": float(kendalltau(first, again).statistic),
                   "measured_ms_range": [min(first), max(first)]}
    return out


def workers(trials: int, work: Path) -> dict[str, Any]:
    """Trials per minute with 1 and 2 workers on one PostgreSQL study (same config, new study each)."""
    from edgedeploy.compress.nas.storage import postgres_bindir, temporary_postgres

    if postgres_bindir() is None:
        return {"skipped": "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)"}
    out = {}
    with temporary_postgres() as url:
        for n in (1, 2):
            study = f"throughput-{n}"
            run = [sys.executable, "-m", "edgedeploy.cli", "nas", "run", str(CONFIG), "--storage", url, "--study",
                   study, "--trials", str(trials), "--out", str(work / study), "--no-report"]
            procs = [subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=ENV)]
            if n == 2:                 # the second joins once the first has created the study
                deadline = time.time() + 300
                while not study_trials(study, url) and procs[0].poll() is None and time.time() < deadline:
                    time.sleep(0.2)
                procs.append(subprocess.Popen([sys.executable, "-m", "edgedeploy.cli", "nas", "worker", "--study",
                                               study, "--storage", url], stdout=subprocess.DEVNULL, env=ENV,
                                              stderr=subprocess.STDOUT))
            codes = [p.wait() for p in procs]
            if any(codes):
                raise SystemExit(f"bench_nas: a worker of study {study} exited with {codes}")
            trials_done = [t for t in study_trials(study, url) if t.datetime_complete is not None
                           and t.state.name in ("COMPLETE", "PRUNED")]
            span = (max(t.datetime_complete for t in trials_done)
                    - min(t.datetime_start for t in trials_done)).total_seconds()
            each = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in trials_done)
            out[f"{n} worker(s)"] = {"trials": len(trials_done), "search_seconds": span,
                                     "median_trial_seconds": each[len(each) // 2],
                                     "load_average_1min": os.getloadavg()[0],
                                     "trials_per_min": 60 * len(trials_done) / span, "exit_codes": codes,
                                     "workers_seen": len({t.user_attrs.get("worker") for t in trials_done})}
            console.print(f"{n} worker(s): {len(trials_done)} trials in {span:.0f} s (first start to last end) = "
                          f"{60 * len(trials_done) / span:.2f} trials/min")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", type=str, default="0")
    ap.add_argument("--worker-trials", type=int, default=16)
    ap.add_argument("--skip-workers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    host = banner("bench_nas: hardware-aware NAS on digits (search, baselines, predictor, workers)")
    data8 = load_digits_data(size=8)
    work = Path(tempfile.mkdtemp(prefix="bench-nas-"))
    runs = searches(args.trials, [int(s) for s in args.seeds.split(",")], data8, work)
    hv = common_hypervolumes(runs)
    main_run = runs["nsga2"][0]
    vs = versus_hand_designed(main_run, work)
    t = Table(title="NAS on digits vs the hand-designed digits CNN (8 epochs each, test split, 1 thread)")
    for col in ("model", "arch", "input", "top-1 %", "ORT ms", "OpenVINO ms", "MACs", "params"):
        t.add_column(col, justify="left" if col in ("model", "arch") else "right")
    for r in vs:
        t.add_row(r["model"], r["arch"], str(r["input"]), f"{r['top1']:.2f}", f"{r['onnxruntime_ms']:.4f}",
                  f"{r['openvino_ms']:.4f}", f"{r['macs']:,}", f"{r['params']:,}")
    console.print(main_run.table())
    console.print(t)
    h = Table(title=f"hypervolume at {args.trials} trials, common bounds (ideal 100 % / 0 ms to the worst trial)")
    for col in ("sampler", "per seed", "mean", "complete", "pruned", "seconds"):
        h.add_column(col)
    for s, vals in hv.items():
        h.add_row(s, ", ".join(f"{v:.4f}" for v in vals), f"{sum(vals) / len(vals):.4f}",
                  str(sum(r.counts["complete"] for r in runs[s])), str(sum(r.counts["pruned"] for r in runs[s])),
                  f"{sum(r.seconds for r in runs[s]):.0f}")
    console.print(h)
    pred = predictor(work)
    wk = {} if args.skip_workers else workers(args.worker_trials, work)
    save("bench_nas", {
        "host": host, "trials": args.trials, "seeds": args.seeds, "config": str(CONFIG.relative_to(ROOT)),
        "main_search": {"chosen": main_run.chosen, "final": main_run.final, "counts": main_run.counts,
                        "hypervolume_history": main_run.hypervolume, "seconds": main_run.seconds,
                        "front": [{"trial": r.number, "arch": r.key, **r.values} for r in main_run.front],
                        "seconds_per_trial": [r.seconds for r in main_run.trials if r.seconds is not None]},
        "vs_hand_designed": vs, "hypervolume_common": hv,
        "searches": {s: [{"seed": i, "counts": r.counts, "seconds": r.seconds,
                          "front": [{"trial": t.number, "arch": t.key, **t.values} for t in r.front]}
                         for i, r in enumerate(rs)] for s, rs in runs.items()},
        "predictor": pred, "workers": wk})


if __name__ == "__main__":
    main()
