"""Heatmaps: LDEQ's normalisation sigma, the spatial softmax of the other families, the soft-argmax read-out."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LandmarkOutput:
    landmarks: torch.Tensor  # (B, n_keypoints, 2) in [0, 1] crop units


@dataclass(frozen=True)
class HeatmapOutput(LandmarkOutput):
    heatmaps: torch.Tensor  # (B, n_keypoints, D, D) probabilities; soft_argmax(heatmaps) == landmarks

    @classmethod
    def from_logits(cls, logits: torch.Tensor, temperature: float) -> "HeatmapOutput":
        heatmaps = spatial_softmax(logits, temperature)
        return cls(soft_argmax(heatmaps), heatmaps)


def normalize_heatmaps(features: torch.Tensor, beta: float) -> torch.Tensor:
    """sigma(z) = exp(beta * (z - max z)) per channel of (B, C, H, W): values in (0, 1], peak exactly 1."""
    peak = features.amax(dim=(2, 3), keepdim=True)
    return torch.exp(beta * (features - peak))


def spatial_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / temperature) over the pixels of each map of (B, C, H, W): each map sums to 1."""
    batch, channels, height, width = logits.shape
    return torch.softmax(logits.flatten(2) / temperature, dim=2).view(batch, channels, height, width)


def soft_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Expected (x, y) of each sum-normalised heatmap of (B, L, H, W), on the grid pixel index / size.

    Heatmap pixel i reads as i / size, so values lie in [0, 1) of the crop and crop pixels are
    value * crop size, as in the authors' release (which adds 1e-4 to the sum; sigma's peak of 1
    already keeps it away from zero, so the division here is exact).
    """
    height, width = heatmaps.shape[-2:]
    probabilities = heatmaps / heatmaps.sum(dim=(2, 3), keepdim=True)
    columns = torch.arange(width, dtype=heatmaps.dtype, device=heatmaps.device) / width
    rows = torch.arange(height, dtype=heatmaps.dtype, device=heatmaps.device) / height
    x = probabilities.sum(dim=2) @ columns
    y = probabilities.sum(dim=3) @ rows
    return torch.stack((x, y), dim=-1)
