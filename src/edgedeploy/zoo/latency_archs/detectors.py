"""Detectors of the published latency tables: YOLOv6 v2.0 (R2) n/t/m, YOLOv7-tiny, YOLOv8 n/s/m."""
from __future__ import annotations

import torch
from torch import nn

from ._layers import Conv, div8


class _RepBlock(nn.Sequential):
    """n RepVGG blocks in deploy form (3x3 conv + ReLU each)."""

    def __init__(self, cin: int, cout: int, n: int) -> None:
        super().__init__(*[Conv(cin if i == 0 else cout, cout, 3, act="relu") for i in range(n)])


class _BepC3(nn.Module):
    """YOLOv6 v2.0 CSPStackRep (BepC3): two 1x1 branches, one through n//2 BottleReps (two RepVGG each)."""

    def __init__(self, cin: int, cout: int, n: int, e: float = 2 / 3) -> None:
        super().__init__()
        c = int(cout * e)
        self.cv1, self.cv2, self.cv3 = Conv(cin, c, 1, act="relu"), Conv(cin, c, 1, act="relu"), Conv(2 * c, cout, 1,
                                                                                                     act="relu")
        self.m = nn.ModuleList(_RepBlock(c, c, 2) for _ in range(max(n // 2, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.cv1(x)
        for block in self.m:
            y = y + block(y)
        return self.cv3(torch.cat([y, self.cv2(x)], 1))


class _SimSPPF(nn.Module):
    def __init__(self, cin: int, cout: int, act: str = "relu") -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(cin, cin // 2, 1, act=act), Conv(cin // 2 * 4, cout, 1, act=act)
        self.pool = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat([x, y1, y2, self.pool(y2)], 1))


class YOLOv6(nn.Module):
    """YOLOv6 v2.0 ("R2" in Luxonis' tools): EfficientRep (n/t) or CSPBep (m) backbone, Rep-PAN neck with
    2x2 transposed-conv up-sampling, efficient decoupled head (SiLU convs); per scale cat(box, sigmoid(cls))."""

    def __init__(self, depth: float, width: float, csp: bool = False, dfl: bool = False, nc: int = 80) -> None:
        super().__init__()
        ch = [div8(c * width) for c in (64, 128, 256, 512, 1024, 256, 128, 128, 256, 256, 512)]
        rep = [max(round(r * depth), 1) if r > 1 else r for r in (1, 6, 12, 18, 6, 12, 12, 12, 12)]

        def block(cin: int, cout: int, n: int) -> nn.Module:
            return _BepC3(cin, cout, n) if csp else _RepBlock(cin, cout, n)

        self.stem = Conv(3, ch[0], 3, 2, act="relu")
        self.stages = nn.ModuleList(
            nn.Sequential(Conv(ch[i], ch[i + 1], 3, 2, act="relu"), block(ch[i + 1], ch[i + 1], rep[i + 1]))
            for i in range(4))
        self.sppf = _SimSPPF(ch[4], ch[4])
        self.reduce0, self.reduce1 = Conv(ch[4], ch[5], 1, act="relu"), Conv(ch[5], ch[6], 1, act="relu")
        self.up0, self.up1 = nn.ConvTranspose2d(ch[5], ch[5], 2, 2), nn.ConvTranspose2d(ch[6], ch[6], 2, 2)
        self.p4, self.p3 = block(ch[3] + ch[5], ch[5], rep[5]), block(ch[2] + ch[6], ch[6], rep[6])
        self.down2, self.down1 = Conv(ch[6], ch[7], 3, 2, act="relu"), Conv(ch[8], ch[9], 3, 2, act="relu")
        self.n3, self.n4 = block(ch[6] + ch[7], ch[8], rep[7]), block(ch[5] + ch[9], ch[10], rep[8])
        self.reg_max = 16 if dfl else 0
        self.heads = nn.ModuleList(nn.ModuleDict({
            "stem": Conv(c, c, 1), "cls": nn.Sequential(Conv(c, c, 3), nn.Conv2d(c, nc, 1)),
            "reg": nn.Sequential(Conv(c, c, 3), nn.Conv2d(c, 4 * (self.reg_max + 1), 1))})
            for c in (ch[6], ch[8], ch[10]))
        if dfl:
            self.proj = nn.Conv2d(self.reg_max + 1, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        feats = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        c3, c4, c5 = feats[1], feats[2], self.sppf(feats[3])
        fpn0 = self.reduce0(c5)
        f0 = self.p4(torch.cat([self.up0(fpn0), c4], 1))
        fpn1 = self.reduce1(f0)
        pan2 = self.p3(torch.cat([self.up1(fpn1), c3], 1))
        pan1 = self.n3(torch.cat([self.down2(pan2), fpn1], 1))
        pan0 = self.n4(torch.cat([self.down1(pan1), fpn0], 1))
        outs = []
        for head, f in zip(self.heads, (pan2, pan1, pan0)):
            f = head["stem"](f)
            box = head["reg"](f)
            if self.reg_max:
                b, _, h, w = box.shape
                box = self.proj(box.view(b, 4, self.reg_max + 1, h * w).permute(0, 2, 1, 3).softmax(1))
                box = box.view(b, 4, h, w)
            outs.append(torch.cat([box, torch.sigmoid(head["cls"](f))], 1))
        return outs


def yolov6n() -> YOLOv6:
    """YOLOv6-N v2.0 (depth 0.33, width 0.25): ~4.3 M params, ~5.6 GMACs at 640."""
    return YOLOv6(0.33, 0.25)


def yolov6t() -> YOLOv6:
    """YOLOv6-T v2.0 (depth 0.33, width 0.375)."""
    return YOLOv6(0.33, 0.375)


def yolov6m() -> YOLOv6:
    """YOLOv6-M v2.0 (CSPStackRep, depth 0.6, width 0.75, DFL head): ~34 M params, ~41 GMACs at 640."""
    return YOLOv6(0.6, 0.75, csp=True, dfl=True)


# ---------------------------------------------------------------------------------------------- YOLOv7-tiny


class _ELAN(nn.Module):
    """YOLOv7-tiny ELAN block: two 1x1 branches, two 3x3 on the second, concat of four, 1x1 out."""

    def __init__(self, cin: int, c: int, cout: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(cin, c, 1, act="leaky"), Conv(cin, c, 1, act="leaky")
        self.cv3, self.cv4 = Conv(c, c, 3, act="leaky"), Conv(c, c, 3, act="leaky")
        self.out = Conv(4 * c, cout, 1, act="leaky")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        a, b = self.cv1(x), self.cv2(x)
        c = self.cv3(b)
        return self.out(torch.cat([self.cv4(c), c, b, a], 1))


class YOLOv7Tiny(nn.Module):
    """YOLOv7-tiny (Wang et al. 2022, yolov7-tiny.yaml): LeakyReLU(0.1), ELAN blocks, SPPCSPC-tiny, 3 anchors."""

    def __init__(self, nc: int = 80, decode: bool = False) -> None:
        super().__init__()
        self.nc, self.decode = nc, decode
        a = "leaky"
        self.stem = nn.Sequential(Conv(3, 32, 3, 2, act=a), Conv(32, 64, 3, 2, act=a))
        self.e2, self.e3 = _ELAN(64, 32, 64), _ELAN(64, 64, 128)
        self.e4, self.e5 = _ELAN(128, 128, 256), _ELAN(256, 256, 512)
        self.mp = nn.MaxPool2d(2, 2)
        self.spp1, self.spp2 = Conv(512, 256, 1, act=a), Conv(512, 256, 1, act=a)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in (5, 9, 13))
        self.spp3, self.spp4 = Conv(1024, 256, 1, act=a), Conv(512, 256, 1, act=a)
        self.r1, self.l1 = Conv(256, 128, 1, act=a), Conv(256, 128, 1, act=a)
        self.h1 = _ELAN(256, 64, 128)
        self.r2, self.l2 = Conv(128, 64, 1, act=a), Conv(128, 64, 1, act=a)
        self.h2 = _ELAN(128, 32, 64)
        self.d1, self.h3 = Conv(64, 128, 3, 2, act=a), _ELAN(256, 64, 128)
        self.d2, self.h4 = Conv(128, 256, 3, 2, act=a), _ELAN(512, 128, 256)
        self.outs = nn.ModuleList(nn.Sequential(Conv(ci, co, 3, act=a), nn.Conv2d(co, 3 * (nc + 5), 1))
                                  for ci, co in ((64, 128), (128, 256), (256, 512)))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        p2 = self.e2(self.stem(x))
        p3 = self.e3(self.mp(p2))
        p4 = self.e4(self.mp(p3))
        p5 = self.e5(self.mp(p4))
        s1, s2 = self.spp1(p5), self.spp2(p5)
        s = self.spp3(torch.cat([pool(s2) for pool in reversed(self.pools)] + [s2], 1))
        s = self.spp4(torch.cat([s, s1], 1))
        t4 = self.h1(torch.cat([self.up(self.r1(s)), self.l1(p4)], 1))
        t3 = self.h2(torch.cat([self.up(self.r2(t4)), self.l2(p3)], 1))
        n4 = self.h3(torch.cat([self.d1(t3), t4], 1))
        n5 = self.h4(torch.cat([self.d2(n4), s], 1))
        maps = [head(f) for head, f in zip(self.outs, (t3, n4, n5))]
        return self._decode(maps) if self.decode else maps

    def _decode(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Boxes (xyxy), best score and class per prediction, decoded in the graph (anchor values are typical)."""
        preds = []
        for i, p in enumerate(maps):
            b, _, h, w = p.shape
            p = p.view(b, 3, self.nc + 5, h, w).permute(0, 1, 3, 4, 2).sigmoid()
            ys, xs = torch.meshgrid(torch.arange(h, dtype=p.dtype), torch.arange(w, dtype=p.dtype), indexing="ij")
            grid = torch.stack([xs, ys], -1).view(1, 1, h, w, 2)
            xy = (p[..., :2] * 2 - 0.5 + grid) * (8 * 2 ** i)
            wh = (p[..., 2:4] * 2) ** 2 * (16.0 * 2 ** i)
            preds.append(torch.cat([xy - wh / 2, xy + wh / 2, p[..., 4:]], -1).view(b, -1, self.nc + 5))
        out = torch.cat(preds, 1)
        scores, classes = (out[..., 5:] * out[..., 4:5]).max(-1)
        return out[..., :4], scores, classes


def yolov7t() -> YOLOv7Tiny:
    """YOLOv7-tiny: ~6.2 M params, ~6.9 GMACs at 640."""
    return YOLOv7Tiny()


def yolov7t_decoded() -> YOLOv7Tiny:
    """YOLOv7-tiny with box decoding in the graph (boxes, scores, classes), as Qualcomm AI Hub exports it."""
    return YOLOv7Tiny(decode=True)


class _C2f(nn.Module):
    def __init__(self, cin: int, cout: int, n: int, shortcut: bool) -> None:
        super().__init__()
        self.c = cout // 2
        self.cv1, self.cv2 = Conv(cin, 2 * self.c, 1), Conv((2 + n) * self.c, cout, 1)
        self.m = nn.ModuleList(nn.Sequential(Conv(self.c, self.c, 3), Conv(self.c, self.c, 3)) for _ in range(n))
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(y[-1] + m(y[-1]) if self.shortcut else m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class _SPPF(_SimSPPF):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, act="silu")


class YOLOv8(nn.Module):
    """YOLOv8 (Ultralytics yolov8.yaml): C2f blocks, SPPF, anchor-free decoupled head with DFL, SiLU everywhere;
    per scale cat(DFL-decoded box, sigmoid(cls)) as Luxonis' converter exports it."""

    def __init__(self, depth: float, width: float, max_ch: int, nc: int = 80) -> None:
        super().__init__()

        def c(v: int) -> int:
            return div8(min(v, max_ch) * width)

        def n(v: int) -> int:
            return max(round(v * depth), 1)

        self.b = nn.ModuleList([
            Conv(3, c(64), 3, 2), Conv(c(64), c(128), 3, 2), _C2f(c(128), c(128), n(3), True),
            Conv(c(128), c(256), 3, 2), _C2f(c(256), c(256), n(6), True), Conv(c(256), c(512), 3, 2),
            _C2f(c(512), c(512), n(6), True), Conv(c(512), c(1024), 3, 2), _C2f(c(1024), c(1024), n(3), True),
            _SPPF(c(1024), c(1024))])
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h12 = _C2f(c(1024) + c(512), c(512), n(3), False)
        self.h15 = _C2f(c(512) + c(256), c(256), n(3), False)
        self.d16, self.h18 = Conv(c(256), c(256), 3, 2), _C2f(c(256) + c(512), c(512), n(3), False)
        self.d19, self.h21 = Conv(c(512), c(512), 3, 2), _C2f(c(512) + c(1024), c(1024), n(3), False)
        chs = (c(256), c(512), c(1024))
        c2, c3 = max(16, chs[0] // 4, 64), max(chs[0], min(nc, 100))
        self.box = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 64, 1)) for x in chs)
        self.cls = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in chs)
        self.dfl = nn.Conv2d(16, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        saved = {}
        for i, layer in enumerate(self.b):
            x = layer(x)
            saved[i] = x
        p4 = self.h12(torch.cat([self.up(x), saved[6]], 1))
        p3 = self.h15(torch.cat([self.up(p4), saved[4]], 1))
        n4 = self.h18(torch.cat([self.d16(p3), p4], 1))
        n5 = self.h21(torch.cat([self.d19(n4), x], 1))
        outs = []
        for box, cls, f in zip(self.box, self.cls, (p3, n4, n5)):
            b = box(f)
            bs, _, h, w = b.shape
            b = self.dfl(b.view(bs, 4, 16, h * w).transpose(2, 1).softmax(1)).view(bs, 4, h, w)
            outs.append(torch.cat([b, torch.sigmoid(cls(f))], 1))
        return outs


def yolov8n() -> YOLOv8:
    """YOLOv8n: ~3.2 M params, ~4.4 GMACs at 640."""
    return YOLOv8(0.33, 0.25, 1024)


def yolov8s() -> YOLOv8:
    """YOLOv8s: ~11.2 M params, ~14.3 GMACs at 640."""
    return YOLOv8(0.33, 0.5, 1024)


def yolov8m() -> YOLOv8:
    """YOLOv8m: ~25.9 M params, ~39.5 GMACs at 640."""
    return YOLOv8(0.67, 0.75, 768)
