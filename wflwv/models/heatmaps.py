"""Heatmaps: LDEQ's normalisation sigma, the spatial softmax of the other families, the soft-argmax
read-out of landmarks, and the heatmaps' likelihood loss."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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


def soft_argmax(heatmaps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Expected (x, y) of each heatmap of (B, L, H, W) divided by eps + its sum, on the grid pixel index / size.

    Heatmap pixel i reads as i / size, so values lie in [0, 1) of the crop and crop pixels are
    value * crop size, as in the authors' release (which divides by 1e-4 + the sum; sigma's peak of 1
    already keeps the sum away from zero, so wflwv's protocol divides by the sum exactly).
    """
    return expected_points(probabilities(heatmaps, eps))


def expected_points(weights: torch.Tensor) -> torch.Tensor:
    """soft_argmax of heatmaps already divided by (eps +) their sums: the weights (B, L, H, W) as they are."""
    height, width = weights.shape[-2:]
    columns = torch.arange(width, dtype=weights.dtype, device=weights.device) / width
    rows = torch.arange(height, dtype=weights.dtype, device=weights.device) / height
    x = weights.sum(dim=2) @ columns
    y = weights.sum(dim=3) @ rows
    return torch.stack((x, y), dim=-1)


def probabilities(heatmaps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Non-negative heatmaps (B, L, H, W) divided by eps + their sum: with eps 0, each sums to 1."""
    return heatmaps / (eps + heatmaps.sum(dim=(2, 3), keepdim=True))


def heatmap_nll(probability_maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the true points (B, L, 2) under heatmaps (B, L, D, D) that sum to 1.

    Points are in soft_argmax's units (pixel index / D); the log-probability is read between pixels
    by bilinear interpolation, and points outside the map are read at its border.
    """
    batch, count, height, width = probability_maps.shape
    log_maps = torch.log(probability_maps.clamp_min(1e-12)).reshape(batch * count, 1, height, width)
    size = points.new_tensor([width, height])
    grid = points * size / (size - 1) * 2 - 1  # pixel index 0 -> -1, D-1 -> 1 (align_corners)
    values = F.grid_sample(log_maps, grid.reshape(batch * count, 1, 1, 2), mode="bilinear", padding_mode="border", align_corners=True)
    return -values.mean()
