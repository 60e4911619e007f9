"""How good a gaze correction is: L1/SSIM to the true target, iris-centre error (px and degrees), flicker."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError, ShapeError
from .eyes import GazePairs
from .model import FieldSmoother, GazeCorrector


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of (N, C, H, W) tensors."""
    if a.shape != b.shape or a.ndim != 4:
        raise ShapeError(f"ssim needs two (N, C, H, W) tensors of one shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.exp(-((torch.arange(11, dtype=torch.float32) - 5) ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    c = a.shape[1]
    col, row = g.view(1, 1, 11, 1).expand(c, 1, 11, 1), g.view(1, 1, 1, 11).expand(c, 1, 1, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:      # separable Gaussian, "valid" windows like skimage's cropping
        return F.conv2d(F.conv2d(x, col, groups=c), row, groups=c)
    a, b = a.float(), b.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.mean(dim=(1, 2, 3))


def corrected_iris(fields: torch.Tensor, iris_in: np.ndarray) -> np.ndarray:
    """Where each warp puts the input iris centre: the output pixel p with p + flow(p) = iris_in (n, 2, 2)."""
    n, _, h, w = fields.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    rows = torch.arange(n)
    out = np.zeros_like(iris_in)
    for e in range(2):
        flow = fields[:, 4 * e:4 * e + 2].float()
        sx, sy = xs + flow[:, 0], ys + flow[:, 1]                  # where each output pixel samples
        c = torch.from_numpy(iris_in[:, e]).float()
        idx = ((sx - c[:, 0, None, None]) ** 2 + (sy - c[:, 1, None, None]) ** 2).flatten(1).argmin(1)
        py, px = (idx // w).clamp(1, h - 2), (idx % w).clamp(1, w - 2)

        def at(m: torch.Tensor, dy: int, dx: int, py: torch.Tensor = py, px: torch.Tensor = px) -> torch.Tensor:
            return m[rows, py + dy, px + dx]
        # one Newton step on p + flow(p) = c, with the Jacobian from central differences
        j11, j12 = (at(sx, 0, 1) - at(sx, 0, -1)) / 2, (at(sx, 1, 0) - at(sx, -1, 0)) / 2
        j21, j22 = (at(sy, 0, 1) - at(sy, 0, -1)) / 2, (at(sy, 1, 0) - at(sy, -1, 0)) / 2
        det = j11 * j22 - j12 * j21
        rx, ry = c[:, 0] - at(sx, 0, 0), c[:, 1] - at(sy, 0, 0)
        ok = det.abs() > 1e-3
        safe = torch.where(ok, det, torch.ones_like(det))
        dx = torch.where(ok, (j22 * rx - j12 * ry) / safe, torch.zeros_like(det)).clamp(-1, 1)
        dy = torch.where(ok, (-j21 * rx + j11 * ry) / safe, torch.zeros_like(det)).clamp(-1, 1)
        out[:, e] = torch.stack([px + dx, py + dy], 1).numpy()
    return out


@dataclass(frozen=True)
class GazeScores:
    """One method's scores: mean L1 (grey levels), mean SSIM, mean iris-centre error in pixels and degrees."""

    l1: float
    ssim: float
    iris_px: float
    iris_deg: float


@dataclass(frozen=True)
class GazeEvaluation:
    """The corrector against the identity warp (no correction) on held-out pairs."""

    model: GazeScores
    identity: GazeScores
    samples: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"gaze correction on {self.samples} held-out eye pairs")
        for col in ("", "L1 (0-255)", "SSIM", "iris error (px)", "iris error (deg)"):
            t.add_column(col)
        for name, s in (("identity warp", self.identity), ("corrector", self.model)):
            t.add_row(name, f"{s.l1:.2f}", f"{s.ssim:.3f}", f"{s.iris_px:.2f}", f"{s.iris_deg:.2f}")
        return t


def _scores(out: torch.Tensor, target: torch.Tensor, iris: np.ndarray, data: GazePairs) -> GazeScores:
    err = np.linalg.norm(iris - data.iris_target, axis=-1)                       # (n, 2) px
    deg = np.degrees(np.arcsin(np.clip(err / data.radius, 0.0, 1.0)))
    return GazeScores(l1=float((out - target).abs().mean()), ssim=float(ssim(out, target).mean()),
                      iris_px=float(err.mean()), iris_deg=float(deg.mean()))


@torch.no_grad()
def evaluate_gaze(model: GazeCorrector, eval_data: GazePairs, batch_size: int = 128) -> GazeEvaluation:
    """Score ``model`` and the identity warp against the true targets of ``eval_data``."""
    model.eval()
    x, target = torch.from_numpy(eval_data.inputs), torch.from_numpy(eval_data.targets)
    fields = torch.cat([model.fields(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    out = model.warp(x, fields)
    mine = _scores(out, target, corrected_iris(fields, eval_data.iris_in), eval_data)
    base = _scores(x[:, [0, 2]], target, eval_data.iris_in, eval_data)
    return GazeEvaluation(model=mine, identity=base, samples=len(eval_data))


@dataclass(frozen=True)
class FlickerResult:
    """Temporal stability of the correction on a slowly moving video, per frame vs with temporal smoothing.

    Flicker is the temporal second difference ``x[t+1] - 2 x[t] + x[t-1]`` of the output in excess of the
    target's, mean absolute, in grey levels: smooth motion barely excites it, frame-to-frame jitter does.
    ``flicker_*`` is measured on the noise-free frames warped by the fields predicted from the noisy frames
    (the correction's own jitter); ``output_flicker_*`` on the noisy outputs as shown, next to the identity
    warp's (the camera-noise floor no correction removes); ``step_*`` is the first difference in excess of the
    target's (includes slow drift of the error); ``l1_*`` the accuracy to the target."""

    frames: int
    alpha: float
    flicker_per_frame: float
    flicker_smoothed: float
    reduction_pct: float
    step_per_frame: float
    step_smoothed: float
    output_flicker_per_frame: float
    output_flicker_smoothed: float
    output_flicker_identity: float
    l1_per_frame: float
    l1_smoothed: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"temporal flicker over {self.frames} frames (EMA alpha {self.alpha})")
        for col in ("", "correction flicker", "frame step", "output flicker", "L1 to target"):
            t.add_column(col)
        t.add_row("identity warp", "", "", f"{self.output_flicker_identity:.3f}", "")
        t.add_row("per frame", f"{self.flicker_per_frame:.3f}", f"{self.step_per_frame:.3f}",
                  f"{self.output_flicker_per_frame:.3f}", f"{self.l1_per_frame:.2f}")
        t.add_row("smoothed", f"{self.flicker_smoothed:.3f}", f"{self.step_smoothed:.3f}",
                  f"{self.output_flicker_smoothed:.3f}", f"{self.l1_smoothed:.2f}")
        t.add_row("reduction", f"{self.reduction_pct:.1f}%", "", "", "")
        return t


def _jitter(out: torch.Tensor, target: torch.Tensor) -> float:
    def d2(v: torch.Tensor) -> torch.Tensor:
        return v[2:] - 2 * v[1:-1] + v[:-2]
    return float((d2(out) - d2(target)).abs().mean())


def _step(out: torch.Tensor, target: torch.Tensor) -> float:
    return float(((out[1:] - out[:-1]) - (target[1:] - target[:-1])).abs().mean())


@torch.no_grad()
def temporal_flicker(model: GazeCorrector, eval_data: GazePairs, alpha: float = 0.3) -> FlickerResult:
    """Flicker of ``model`` on a video (``make_sequence``) run per frame and with a FieldSmoother(``alpha``)."""
    if len(eval_data) < 3:
        raise ConfigError(f"temporal_flicker needs a sequence of >= 3 frames (got {len(eval_data)}); use make_sequence")
    model.eval()
    x, target = torch.from_numpy(eval_data.inputs), torch.from_numpy(eval_data.targets)
    clean = x.clone()
    clean[:, [0, 2]] = torch.from_numpy(eval_data.clean)
    raw = model.fields(x)                                  # frames are independent: one batched call
    smoother = FieldSmoother(alpha)
    smooth = torch.cat([smoother(raw[t:t + 1]) for t in range(len(x))])
    r = {}
    for name, fields in (("raw", raw), ("smooth", smooth)):
        shown = model.warp(x, fields)
        clean_out = model.warp(clean, fields)
        r[name] = {"flicker": _jitter(clean_out, target), "step": _step(clean_out, target),
                   "output": _jitter(shown, target), "l1": float((shown - target).abs().mean())}
    per, smo = r["raw"]["flicker"], r["smooth"]["flicker"]
    return FlickerResult(frames=len(x), alpha=alpha, flicker_per_frame=per, flicker_smoothed=smo,
                         reduction_pct=100.0 * (1 - smo / per) if per > 0 else 0.0,
                         step_per_frame=r["raw"]["step"], step_smoothed=r["smooth"]["step"],
                         output_flicker_per_frame=r["raw"]["output"], output_flicker_smoothed=r["smooth"]["output"],
                         output_flicker_identity=_jitter(x[:, [0, 2]], target),
                         l1_per_frame=r["raw"]["l1"], l1_smoothed=r["smooth"]["l1"])
