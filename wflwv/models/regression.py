"""Direct regression: a timm backbone with global pooling and a linear layer to the 2 x n_keypoints
coordinates, squashed by a sigmoid into [0, 1] crop units. No heatmaps."""

import argparse

import timm
import torch
import torch.nn as nn

from wflwv.models.heatmaps import LandmarkOutput
from wflwv.models.options import require_options

OPTIONS = ("im_size", "n_keypoints", "backbone")


def check_args(args: argparse.Namespace) -> None:
    require_options(args, OPTIONS)
    if not timm.is_model(args.backbone):
        raise ValueError(f"backbone {args.backbone!r} is not a timm model")


class Regression(nn.Module):
    def __init__(self, args: argparse.Namespace):
        super().__init__()
        check_args(args)
        self.args = args
        self.backbone = timm.create_model(args.backbone, pretrained=False, num_classes=2 * args.n_keypoints)

    def forward(self, images: torch.Tensor) -> LandmarkOutput:
        coordinates = torch.sigmoid(self.backbone(images))
        return LandmarkOutput(coordinates.view(len(images), self.args.n_keypoints, 2))
