"""Stacked hourglass (Newell et al. 2016): LDEQ's stem and hourglass block, repeated `stacks` times with
weights of their own, each stack reading out heatmaps that the loss supervises.

The explicit, unrolled counterpart of LDEQ: where LDEQ iterates one cell to its fixed point, this
network applies K different cells once each, so its parameters and training memory grow with K.
Between stacks the features and the heatmap logits are mapped back by 1x1 convs and added to the
stack's input, as in the paper. The training loss is averaged over every stack's read-out
(intermediate supervision, wflwv.train.training_loss).
"""

import argparse
from dataclasses import dataclass

import torch
import torch.nn as nn

from wflwv.models.heatmaps import HeatmapOutput
from wflwv.models.ldeq import HOURGLASS_LEVELS, ConvBlock, Hourglass, stem
from wflwv.models.options import require_options

OPTIONS = ("im_size", "heatmap_size", "n_keypoints", "base_width", "width_increment", "stacks", "temperature")


@dataclass(frozen=True)
class StackedOutput(HeatmapOutput):
    stacks: tuple[HeatmapOutput, ...]  # every stack's read-out; the last one's landmarks and heatmaps are this output's


def check_args(args: argparse.Namespace) -> None:
    require_options(args, OPTIONS)
    if args.im_size != 4 * args.heatmap_size:
        raise ValueError(f"im_size ({args.im_size}) must be 4 x heatmap_size ({args.heatmap_size}): the stem downsamples by 4")
    if args.heatmap_size % 2**HOURGLASS_LEVELS:
        raise ValueError(f"heatmap_size ({args.heatmap_size}) must be a multiple of {2**HOURGLASS_LEVELS} for the hourglass")
    if args.base_width % 4:
        raise ValueError(f"base_width ({args.base_width}) must be a multiple of 4: the stem's widths are base_width / 4 and / 2")
    if args.stacks < 1:
        raise ValueError(f"stacks ({args.stacks}) must be at least 1")


class StackedHourglass(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        check_args(args)
        self.args = args
        width, stacks = args.base_width, args.stacks
        self.stem = stem(width)
        self.hourglasses = nn.ModuleList([Hourglass(width, args.width_increment, nn.BatchNorm2d) for _ in range(stacks)])
        self.features = nn.ModuleList([ConvBlock(width, width, 1, norm=nn.BatchNorm2d) for _ in range(stacks)])
        self.heads = nn.ModuleList([nn.Conv2d(width, args.n_keypoints, 1) for _ in range(stacks)])
        self.merge_features = nn.ModuleList([nn.Conv2d(width, width, 1) for _ in range(stacks - 1)])
        self.merge_heatmaps = nn.ModuleList([nn.Conv2d(args.n_keypoints, width, 1) for _ in range(stacks - 1)])

    def forward(self, images: torch.Tensor) -> StackedOutput:
        x = self.stem(images)
        stacks = []
        for stack in range(self.args.stacks):
            features = self.features[stack](self.hourglasses[stack](x))
            logits = self.heads[stack](features)
            stacks.append(HeatmapOutput.from_logits(logits, self.args.temperature))
            if stack < self.args.stacks - 1:
                x = x + self.merge_features[stack](features) + self.merge_heatmaps[stack](logits)
        return StackedOutput(stacks[-1].landmarks, stacks[-1].heatmaps, tuple(stacks))
