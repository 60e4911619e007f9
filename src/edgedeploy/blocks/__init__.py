"""Hardware-aware blocks (one per file, timm style) and the transforms that use them: ``reparameterize``, ``swap``.

Importing this package imports torch; ``import edgedeploy`` does not import it until a block is used.
"""
from __future__ import annotations

from .conv_bn_act import ConvBNAct
from .dense_feat import DenseFeatBlock
from .espcn import ESPCN
from .ghost import GhostConv2d
from .mobileone import MobileOneBlock, MobileOneUnit
from .partial_conv import PartialConv2d
from .pixel_shuffle import PixelShuffleUpsample
from .reparam import ReparamConfig, ReparamReport, ReparamResult, reparameterize
from .repvgg import RepVGGBlock
from .space_to_depth import SpaceToDepth, SpaceToDepthStem
from .swap import SWAP_RULES, SwapChange, SwapResult, SwapRule, register_rule, swap

__all__ = [
    "ConvBNAct", "SpaceToDepth", "SpaceToDepthStem", "DenseFeatBlock", "GhostConv2d", "PartialConv2d",
    "PixelShuffleUpsample", "ESPCN", "RepVGGBlock", "MobileOneBlock", "MobileOneUnit",
    "reparameterize", "ReparamConfig", "ReparamReport", "ReparamResult",
    "swap", "SwapResult", "SwapChange", "SwapRule", "SWAP_RULES", "register_rule",
]
