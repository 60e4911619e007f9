"""The deployed early-exit driver: runs exported stages on ONNX Runtime or OpenVINO and stops each sample at its
first confident exit (a compacted batch goes on to the next stage). Needs numpy and the runtime only, no torch:

    python -m edgedeploy.compress.early_exit.runner build/ee samples.npy --runtime openvino
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...data import load_npy
from ...errors import ArtifactError, ConfigError, EdgeDeployError, ShapeError
from ...runtime import load
from .decide import CRITERIA, ExitPrediction, merge, run_staged

SPEC_NAME = "early_exit.json"
RUNTIMES = ("onnxruntime", "openvino")
_FILE_KEY = {"onnxruntime": "onnx", "openvino": "openvino"}


def read_spec(folder: str | Path) -> dict[str, Any]:
    """The ``early_exit.json`` written by ``export_staged``."""
    path = Path(folder) / SPEC_NAME
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist; write the stages with "
                            f"export_staged(model, x, out={str(folder)!r})")
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); re-export the stages") from exc
    if not isinstance(spec, dict) or not str(spec.get("format", "")).startswith("edgedeploy-early-exit/"):
        raise ArtifactError(f"{path} is not an edgedeploy early-exit spec; re-export the stages")
    return spec


class StagedRunner:
    """One session per stage (opened with ``edgedeploy.runtime.load``); ``predict`` stops early per sample.

    ``thresholds``/``criterion`` override the exported ones (e.g. to trade accuracy for speed on the device).
    """

    def __init__(self, folder: str | Path, runtime: str = "onnxruntime", threads: int | None = None,
                 thresholds: Sequence[float] | None = None, criterion: str | None = None, **options: Any) -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown staged runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
        self.folder = Path(folder)
        spec = read_spec(folder)
        self.spec = spec
        self.runtime = runtime
        self.files = [st.get(_FILE_KEY[runtime]) or st["onnx"] for st in spec["stages"]]
        self.sessions = [load(self.folder / f, runtime=runtime, threads=threads, **options) for f in self.files]
        self.outputs = [list(st["outputs"]) for st in spec["stages"]]
        self.criterion = criterion or spec["criterion"]
        if self.criterion not in CRITERIA:
            raise ConfigError(f"unknown exit criterion {self.criterion!r}; choose one of {', '.join(CRITERIA)}")
        self.thresholds = [float(t) for t in (thresholds if thresholds is not None else spec["thresholds"])]
        if len(self.thresholds) != len(self.sessions) - 1:
            raise ConfigError(f"{len(self.sessions)} stages need {len(self.sessions) - 1} thresholds, "
                              f"got {len(self.thresholds)}")
        self.class_names = tuple(spec["class_names"]) if spec.get("class_names") else None
        self.stage_macs = [int(m) for m in spec["stage_macs"]]
        self.full_macs = int(spec["full_macs"])
        self.dynamic_batch = bool(spec.get("dynamic_batch", True))

    def _stage(self, session: Any) -> Any:
        return lambda arrays: session.run(arrays)

    def predict(self, x: Any, batch_size: int | None = None) -> ExitPrediction:
        """Label, confidence and exit per sample of a batch ``x`` (N, ...); later stages run only for samples left."""
        arr = np.ascontiguousarray(np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, np.float32))
        if arr.ndim < 2:
            raise ShapeError(f"predict needs a batch (N, ...) of inputs, got shape {arr.shape}")
        bs = (batch_size or len(arr)) if self.dynamic_batch else 1    # static stages: one sample at a time
        fns = [self._stage(s) for s in self.sessions]
        return merge([run_staged(fns, [arr[i:i + bs]], self.thresholds, self.criterion, self.stage_macs,
                                 self.full_macs, self.class_names, self.runtime) for i in range(0, len(arr), bs)])

    def __repr__(self) -> str:
        return (f"<StagedRunner {self.folder} runtime={self.runtime} stages={len(self.sessions)} "
                f"criterion={self.criterion} thresholds={[round(t, 4) for t in self.thresholds]}>")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print one 'PREDICTED LABEL: ... CONFIDENCE: ..., EXIT: ...' line per sample of a .npy batch."""
    ap = argparse.ArgumentParser(description="Run exported early-exit stages and stop early per sample.")
    ap.add_argument("folder", help="folder written by export_staged (holds early_exit.json)")
    ap.add_argument("inputs", help=".npy file with a batch (N, ...) of float inputs")
    ap.add_argument("--runtime", default="onnxruntime", choices=RUNTIMES)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        if not Path(args.inputs).is_file():
            raise ConfigError(f"input file {args.inputs} does not exist; give a .npy batch (N, ...) of float inputs")
        runner = StagedRunner(args.folder, runtime=args.runtime, threads=args.threads)
        pred = runner.predict(load_npy(Path(args.inputs), "evaluation"), batch_size=args.batch_size)
    except EdgeDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(pred)
    print(f"# {len(pred)} samples, exit histogram {pred.histogram()}, {100 * pred.saving:.1f}% of the full "
          f"model's MACs skipped ({pred.macs_per_sample:,.0f} MACs/sample of {pred.full_macs:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
