"""Training targets and loss of the detector's head: Gaussian heat maps and dense box regression (TTFNet-style).

Heat map (per class, stride-4 cells): an elliptical Gaussian per object with sigma = 0.09 x its size in cells
(TTFNet's alpha = 0.54 over 6), peak exactly 1 at the centre cell; ``crowd`` boxes are "don't care" there.
Boxes: every cell near an object's centre (its Gaussian > 0.05 and inside the box) regresses the log distances
from the cell centre to the box's left, top, right and bottom edges (in cells), weighted by the Gaussian and
normalised per object; smaller objects win shared cells. Dense targets give each object many training samples, the
reason TTFNet (Liu et al. 2020) trains several times faster than CenterNet's centre-only regression.
Loss = penalty-reduced focal loss (CenterNet: alpha 2, beta 4) / #objects + GIoU loss of the regressed boxes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .data import ImageLabels
from .model import NUM_CLASSES, STRIDE

SIGMA_PER_SIZE = 0.09
REG_MIN_GAUSS = 0.05


def encode(labels: list[ImageLabels], out_hw: tuple[int, int], stride: int = STRIDE) -> dict[str, torch.Tensor]:
    """Dense targets for a batch: ``heat`` / ``ignore`` (B, C, h, w), ``reg`` log ltrb (B, 4, h, w), ``weight``."""
    h, w = out_hw
    b = len(labels)
    heat = np.zeros((b, NUM_CLASSES, h, w), np.float32)
    ignore = np.zeros_like(heat)
    reg = np.zeros((b, 4, h, w), np.float32)
    weight = np.zeros((b, 1, h, w), np.float32)
    centres = (np.arange(max(h, w), dtype=np.float32) + 0.5)
    for i, lb in enumerate(labels):
        order = np.argsort(-(lb.boxes[:, 2] * lb.boxes[:, 3]), kind="stable")   # large first: small ones overwrite
        for j in order:
            x, y, bw, bh = (float(v) / stride for v in lb.boxes[j])
            cls = int(lb.labels[j])
            if bw * stride < 1 or bh * stride < 1:
                continue
            if lb.crowd[j]:
                rows = slice(int(max(y, 0)), int(min(np.ceil(y + bh), h)))
                ignore[i, cls, rows, int(max(x, 0)):int(min(np.ceil(x + bw), w))] = 1
                continue
            cx, cy = x + bw / 2, y + bh / 2
            ix, iy = int(cx), int(cy)
            if not (0 <= ix < w and 0 <= iy < h):
                continue
            sx, sy = max(SIGMA_PER_SIZE * bw, 0.5), max(SIGMA_PER_SIZE * bh, 0.5)
            x0, x1 = max(ix - int(3 * sx) - 1, 0), min(ix + int(3 * sx) + 2, w)
            y0, y1 = max(iy - int(3 * sy) - 1, 0), min(iy + int(3 * sy) + 2, h)
            gx = np.exp(-((np.arange(x0, x1, dtype=np.float32) - ix) ** 2) / (2 * sx * sx))
            gy = np.exp(-((np.arange(y0, y1, dtype=np.float32) - iy) ** 2) / (2 * sy * sy))
            g = gy[:, None] * gx[None, :]
            np.maximum(heat[i, cls, y0:y1, x0:x1], g, out=heat[i, cls, y0:y1, x0:x1])
            heat[i, cls, iy, ix] = 1.0
            px, py = centres[x0:x1][None, :], centres[y0:y1][:, None]
            ltrb = [px - x, py - y, x + bw - px, y + bh - py]
            region = (g > REG_MIN_GAUSS) & (np.minimum.reduce([np.broadcast_to(d, g.shape) for d in ltrb]) > 0)
            if not region.any():
                region = np.zeros_like(g, bool)
                region[iy - y0, ix - x0] = True
            for k, d in enumerate(ltrb):
                reg[i, k, y0:y1, x0:x1][region] = np.log(np.maximum(np.broadcast_to(d, g.shape)[region], 0.05))
            wk = np.where(region, g, 0.0)
            weight[i, 0, y0:y1, x0:x1][region] = (wk / wk.sum())[region]
    return {k: torch.from_numpy(v) for k, v in (("heat", heat), ("ignore", ignore), ("reg", reg), ("weight", weight))}


def giou_loss(pred_log_ltrb: torch.Tensor, target_log_ltrb: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of boxes given as log distances (N, 4) from a shared reference point."""
    p = torch.exp(pred_log_ltrb.clamp(-4.0, 6.0))
    t = torch.exp(target_log_ltrb)
    area_p = (p[:, 0] + p[:, 2]) * (p[:, 1] + p[:, 3])
    area_t = (t[:, 0] + t[:, 2]) * (t[:, 1] + t[:, 3])
    mn, mx = torch.minimum(p, t), torch.maximum(p, t)
    inter = (mn[:, 0] + mn[:, 2]) * (mn[:, 1] + mn[:, 3])
    union = area_p + area_t - inter
    hull = (mx[:, 0] + mx[:, 2]) * (mx[:, 1] + mx[:, 3])
    iou = inter / union.clamp(min=1e-6)
    return 1 - (iou - (hull - union) / hull.clamp(min=1e-6))


def detection_loss(out: torch.Tensor, t: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (focal heat-map loss, GIoU box loss) for raw network output (B, 6, h, w)."""
    logits = out[:, :NUM_CLASSES]
    heat, ignore = t["heat"], t["ignore"]
    pos = heat.eq(1).float()
    n = pos.sum().clamp(min=1.0)
    p = torch.sigmoid(logits)
    pos_loss = F.logsigmoid(logits) * (1 - p) ** 2 * pos
    neg_loss = F.logsigmoid(-logits) * p ** 2 * (1 - heat) ** 4 * (1 - pos) * (1 - ignore)
    focal = -(pos_loss.sum() + neg_loss.sum()) / n
    wmap = t["weight"][:, 0]
    sel = wmap > 0
    if sel.any():
        pred = out[:, NUM_CLASSES:].permute(0, 2, 3, 1)[sel]
        target = t["reg"].permute(0, 2, 3, 1)[sel]
        box = (giou_loss(pred, target) * wmap[sel]).sum() / n * 2.0
    else:
        box = out.sum() * 0.0
    total = focal + box
    return total, {"loss": total.item(), "heat": focal.item(), "box": box.item()}
