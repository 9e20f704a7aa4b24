"""HRNet (Wang et al. 2019) with the HRNetV2 heatmap head: a timm HRNet backbone's four branch
outputs upsampled to the finest one (a quarter of the crop side), concatenated, a 1x1 conv with
BatchNorm and ReLU, and a 1x1 conv to the heatmaps, resized to heatmap_size if that differs.
"""

import argparse

import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

from wflwv.models.heatmaps import HeatmapOutput
from wflwv.models.options import require_options

OPTIONS = ("im_size", "heatmap_size", "n_keypoints", "backbone", "temperature")
BRANCHES = (1, 2, 3, 4)  # timm's feature 0 is the stem's; 1-4 are the branches at strides 4, 8, 16, 32


def check_args(args: argparse.Namespace) -> None:
    require_options(args, OPTIONS)
    if not (args.backbone.startswith("hrnet") and timm.is_model(args.backbone)):
        raise ValueError(f"backbone {args.backbone!r} is not a timm HRNet (one of {', '.join(timm.list_models('hrnet*'))})")
    if args.im_size % 32:
        raise ValueError(f"im_size ({args.im_size}) must be a multiple of 32, the backbone's coarsest stride")


class HRNet(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        check_args(args)
        self.args = args
        # branch outputs, not timm's classification "incre" features; never downloads weights
        self.backbone = timm.create_model(args.backbone, pretrained=False, features_only=True, feature_location="", out_indices=BRANCHES)
        width = sum(self.backbone.feature_info.channels())
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(width, args.n_keypoints, 1)

    def forward(self, images: torch.Tensor) -> HeatmapOutput:
        branches = self.backbone(images)
        size = branches[0].shape[-2:]
        x = torch.cat([branches[0]] + [F.interpolate(b, size=size, mode="bilinear", align_corners=False) for b in branches[1:]], dim=1)
        logits = self.head(self.fuse(x))
        if logits.shape[-1] != self.args.heatmap_size:
            logits = F.interpolate(logits, size=self.args.heatmap_size, mode="bilinear", align_corners=False)
        return HeatmapOutput.from_logits(logits, self.args.temperature)
