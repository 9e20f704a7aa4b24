"""U-Net (Ronneberger et al. 2015) producing heatmaps: an encoder from the crop's full resolution down
`depth` halvings, a decoder back up to the heatmap resolution with skip concatenations, a 1x1 head.

Levels finer than the heatmaps are only on the way down (their skips would be decoded at a
resolution that is then thrown away). Upsampling is bilinear followed by the double convolution.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from wflwv.models.heatmaps import HeatmapOutput
from wflwv.models.options import require_options

OPTIONS = ("im_size", "heatmap_size", "n_keypoints", "base_width", "depth", "temperature")


def check_args(args: argparse.Namespace) -> None:
    require_options(args, OPTIONS)
    ratio = args.im_size // args.heatmap_size
    if args.im_size % args.heatmap_size or ratio & (ratio - 1):
        raise ValueError(f"im_size ({args.im_size}) must be heatmap_size ({args.heatmap_size}) times a power of 2")
    if args.depth <= heatmap_level(args) or args.im_size % 2**args.depth:
        raise ValueError(f"depth ({args.depth}) must go below the heatmap level ({heatmap_level(args)}) and divide im_size ({args.im_size}) by 2**depth")


def heatmap_level(args: argparse.Namespace) -> int:
    """The encoder level whose resolution is the heatmaps': im_size / 2**level == heatmap_size."""
    return (args.im_size // args.heatmap_size).bit_length() - 1


def double_conv(in_width: int, out_width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_width, out_width, 3, padding=1, bias=False), nn.BatchNorm2d(out_width), nn.ReLU(inplace=True),
        nn.Conv2d(out_width, out_width, 3, padding=1, bias=False), nn.BatchNorm2d(out_width), nn.ReLU(inplace=True),
    )  # fmt: skip


class UNet(nn.Module):
    """Widths base_width * 2**level; encoder level l works at im_size / 2**l."""

    def __init__(self, args: argparse.Namespace):
        super().__init__()
        check_args(args)
        self.args = args
        widths = [args.base_width * 2**level for level in range(args.depth + 1)]
        self.down = nn.ModuleList([double_conv(3, widths[0])] + [double_conv(widths[level - 1], widths[level]) for level in range(1, args.depth + 1)])
        self.up = nn.ModuleList([double_conv(widths[level + 1] + widths[level], widths[level]) for level in reversed(range(heatmap_level(args), args.depth))])
        self.head = nn.Conv2d(widths[heatmap_level(args)], args.n_keypoints, 1)

    def forward(self, images: torch.Tensor) -> HeatmapOutput:
        skips, x = [], images
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()  # the bottom level is x itself
        for block in self.up:
            x = block(torch.cat((skips.pop(), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)), dim=1))
        return HeatmapOutput.from_logits(self.head(x), self.args.temperature)
