"""A small vision transformer on scikit-learn's real digits (16x16, 2x2 patches = 64 tokens), for token-routing
experiments (Mixture of Depths): a small convolutional patch stem (a plain linear patch embedding left this ViT
stuck at chance for epochs on 1,348 digits; early convolutions fix it, Xiao et al. 2021), pre-norm blocks and
mean-pooled tokens (no class token, so every token is equal for a router)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .digits import DigitsData, load_digits_data
from .registry import register_model, register_task


class Attention(nn.Module):
    """Multi-head self-attention over (B, T, C) tokens (scaled dot-product attention)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"dim {dim} is not divisible by heads {heads}; pick heads that divide dim")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Conv patch stem + learned positions, ``depth`` blocks (``self.blocks``), norm, token mean, linear head."""

    def __init__(self, img_size: int = 16, patch: int = 2, in_chans: int = 1, dim: int = 64, depth: int = 6,
                 heads: int = 4, mlp_ratio: float = 4.0, num_classes: int = 10) -> None:
        super().__init__()
        if img_size % patch:
            raise ConfigError(f"img_size {img_size} is not a multiple of patch {patch}; pick a patch that divides it")
        self.patch_embed = nn.Sequential(nn.Conv2d(in_chans, dim, 2 * (patch // 2) + 1, patch, patch // 2), nn.GELU(),
                                         nn.Conv2d(dim, dim, 1))
        self.pos = nn.Parameter(torch.zeros(1, (img_size // patch) ** 2, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x).mean(1))


def _shift(x: torch.Tensor, gen: torch.Generator, pixels: int = 1) -> torch.Tensor:
    """Random translation of each image by up to ``pixels`` (zero padding): the augmentation a digits ViT needs."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n), generator=gen)
    rows = torch.arange(h)[None, :, None] + dy[:, None, None]
    cols = torch.arange(w)[None, None, :] + dx[:, None, None]
    idx = (rows * (w + 2 * pixels) + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, idx).reshape(n, c, h, w)


def train_vit(model: nn.Module, data: DigitsData, epochs: int = 30, lr: float = 1e-3, weight_decay: float = 0.05,
              batch_size: int = 64, seed: int = 0, augment: bool = True) -> list[float]:
    """AdamW with linear warm-up and cosine decay, label smoothing 0.1 and random 1-pixel shifts; per-epoch loss."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(data.x_train) + batch_size - 1) // batch_size)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, 0.5 * (1 + torch.cos(
        torch.tensor(torch.pi * min(s, steps) / steps)).item())))
    history = []
    model.train()
    for epoch in range(epochs):
        total, n = 0.0, 0
        for xb, yb in data.batches(batch_size, train=True, seed=seed + epoch):
            if augment:
                xb = _shift(xb, gen)
            loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(xb), n + len(xb)
        history.append(total / n)
    model.eval()
    return history


@register_model("tiny-vit")
def tiny_vit(dim: int = 64, depth: int = 6, heads: int = 4, pretrained: bool = False, epochs: int = 30,
             seed: int = 0) -> TinyViT:
    """The digits ViT (16x16 digits, 64 tokens, 22.3 M MACs); ``pretrained=True`` trains it here on sklearn's digits
    (~3 min on one core; 97.3% top-1 on the zoo's test split), seeded."""
    torch.manual_seed(seed)
    model = TinyViT(dim=dim, depth=depth, heads=heads)
    if pretrained:
        train_vit(model, load_digits_data(size=16), epochs=epochs, seed=seed)
    return model.eval()


__all__ = ["Attention", "Block", "TinyViT", "tiny_vit", "train_vit"]


def _train_task(model: nn.Module, data: DigitsData | None = None, epochs: int = 30, seed: int = 0
                ) -> list[dict[str, float]]:
    """The recipe's train step for the digits ViT (also after a mod step: the routers learn with the blocks)."""
    losses = train_vit(model, data or load_digits_data(size=16), epochs=epochs, seed=seed)
    return [{"epoch": float(i + 1), "loss": loss} for i, loss in enumerate(losses)]


register_task("tiny-vit", trainer=_train_task)
