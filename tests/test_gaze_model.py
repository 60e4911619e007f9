"""The gaze corrector's model: the ColorModel interface, the exact left/right mirror, the warp, smoothing, zoo."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgedeploy.errors import ConfigError, ShapeError
from edgedeploy.zoo import create
from edgedeploy.zoo.gaze import (EyeWarpNet, FieldSmoother, GazeCorrector, GazeNetConfig, apply_field, mirror_net,
                                 sampling_grid)


def _random_net(seed: int = 0) -> EyeWarpNet:
    """Seeded random weights everywhere (the default head starts as the identity warp)."""
    torch.manual_seed(seed)
    net = EyeWarpNet()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.3)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _inputs(n: int = 2, angle: float = 12.0) -> torch.Tensor:
    x = torch.rand(n, 2, 48, 64, generator=torch.Generator().manual_seed(1)) * 255
    x[:, 1] = angle
    return x


@torch.no_grad()
def test_color_model_interface_flow_and_softmax():
    net = _random_net()
    out = net(_inputs())
    assert out.shape == (2, 4, 48, 64)
    assert out[:, 0:2].abs().max() <= net.config.max_flow + 1e-5          # flow in pixels, bounded by tanh
    assert out[:, 0:2].abs().max() > 1.0                                   # and really used
    torch.testing.assert_close(out[:, 2:4].sum(1), torch.ones(2, 48, 64))  # the Softmax pair


@torch.no_grad()
def test_right_model_is_the_exact_mirror_of_the_left():
    left = _random_net(3)
    right = mirror_net(left).eval()
    x = _inputs(3)
    a = left(x)
    b = right(x.flip(-1)).flip(-1)
    b[:, 0] = -b[:, 0]                       # dx changes sign in a mirror
    assert float((a - b).abs().max()) < 1e-4
    assert float((a - left(x.flip(-1))).abs().max()) > 0.1     # and the left model alone is not symmetric


@torch.no_grad()
def test_new_model_is_the_identity_warp():
    model = GazeCorrector().eval()
    x = torch.cat([_inputs(), _inputs()], 1)
    out = model(x)
    assert out.shape == (2, 2, 48, 64)
    assert float((out - x[:, [0, 2]]).abs().max()) < 0.2        # keep weight 0.9997: at most 0.1 grey of white


def test_integer_flow_shifts_the_image_exactly():
    img = torch.rand(1, 3, 48, 64) * 255
    field = torch.zeros(1, 4, 48, 64)
    field[:, 0], field[:, 1], field[:, 2] = 2.0, -1.0, 1.0     # sample 2 px right, 1 px up; keep every pixel
    out = apply_field(img, field)
    torch.testing.assert_close(out[..., 1:, :-2], img[..., :-1, 2:], atol=5e-3, rtol=0)
    field[:, 2], field[:, 3] = 0.25, 0.75                       # blend three quarters towards white
    torch.testing.assert_close(apply_field(img, field)[..., 1:, :-2], 0.25 * img[..., :-1, 2:] + 191.25,
                               atol=5e-3, rtol=0)


def test_sampling_grid_is_normalized_for_align_corners():
    grid = sampling_grid(torch.zeros(1, 2, 48, 64))
    assert grid[0, 0, 0].tolist() == [-1.0, -1.0]
    torch.testing.assert_close(grid[0, -1, -1], torch.tensor([1.0, 1.0]))


def test_shape_errors_name_the_expected_layout():
    model = GazeCorrector()
    with pytest.raises(ShapeError, match="left grey, left angle"):
        model(torch.zeros(1, 2, 48, 64))
    with pytest.raises(ShapeError, match="multiples of 8"):
        model(torch.zeros(1, 4, 50, 64))
    with pytest.raises(ShapeError, match="field"):
        apply_field(torch.zeros(1, 1, 48, 64), torch.zeros(1, 2, 48, 64))
    with pytest.raises(ConfigError, match="widths"):
        GazeNetConfig(widths=(8, 16))


def test_field_smoother_averages_and_resets():
    smoother = FieldSmoother(alpha=0.25)
    rng = np.random.default_rng(0)
    frames = [torch.from_numpy(rng.normal(0, 1, (1, 4, 8, 8)).astype(np.float32)) for _ in range(200)]
    out = torch.cat([smoother(f) for f in frames])
    assert float(out[50:].std()) < 0.45 * float(torch.cat(frames)[50:].std())   # EMA: std x sqrt(a / (2 - a))
    smoother.reset()
    torch.testing.assert_close(smoother(frames[0]), frames[0])
    host = FieldSmoother(alpha=0.5)                              # numpy fields from the device, on the host
    host(np.zeros((1, 4, 8, 8), np.float32))
    np.testing.assert_allclose(host(np.ones((1, 4, 8, 8), np.float32)), 0.5)
    with pytest.raises(ConfigError, match="alpha"):
        FieldSmoother(alpha=0.0)


def test_zoo_creates_the_untrained_corrector():
    model = create("gaze")
    assert isinstance(model, GazeCorrector) and not model.training
    assert {"left_model", "right_model"} <= {n for n, _ in model.named_children()}
