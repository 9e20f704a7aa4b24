"""Bootstrap confidence intervals of dataset figures, and paired differences between methods.

A dataset figure is the mean of per-unit values (per video, or per image for stills), NaN units
left out. The bootstrap resamples the units with replacement; a paired difference resamples the
same units for both methods, so that what the two share (hard videos are hard for everyone)
cancels. Resampling is seeded and the draws depend only on the number of units, so every method
scored on the same units is resampled alike. Values are (..., units): one call handles many methods.
"""

from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    estimate: np.ndarray  # (...) the mean over the units
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class Difference(Interval):
    p_below_zero: np.ndarray  # (...) the share of resamples in which the difference is below zero


def _nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nansum(values, axis=axis) / np.sum(~np.isnan(values), axis=axis)


def resampled_means(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(..., resamples) means of `values` (..., units) over units drawn with replacement, the same draws for every leading index."""
    values = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).integers(0, values.shape[-1], (resamples, values.shape[-1]))
    return _nanmean(values[..., draws])  # values[..., draws] is (..., resamples, units)


def _bounds(means: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        quantiles = np.full((2, *means.shape[:-1]), np.nan)
        finite = np.isfinite(means).any(axis=-1)
        quantiles[:, finite] = np.nanpercentile(means[finite], [50 * (1 - level), 50 * (1 + level)], axis=-1)
    return quantiles[0], quantiles[1]


def bootstrap_interval(values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> Interval:
    """The mean of `values` (..., units) with its percentile bootstrap interval."""
    values = np.asarray(values, dtype=float)
    return Interval(_nanmean(values), *_bounds(resampled_means(values, resamples, seed), level))


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> Difference:
    """mean(a) - mean(b) over the same units (a and b broadcast to (..., units)), with its paired bootstrap
    interval and P(difference < 0). A unit where either value is NaN is left out of both means."""
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    means = resampled_means(differences, resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.sum(means < 0, axis=-1) / np.sum(np.isfinite(means), axis=-1)
    return Difference(_nanmean(differences), *_bounds(means, level), below)


def t_interval(values: np.ndarray, level: float = LEVEL) -> Interval:
    """Student's t interval of the mean of `values` (..., draws) over a few independent draws (training seeds, not
    resampled units: five seeds are too few to bootstrap); NaN bounds from a single draw."""
    values = np.asarray(values, dtype=float)
    draws = np.sum(~np.isnan(values), axis=-1)
    mean = _nanmean(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.nansum((values - mean[..., None]) ** 2, axis=-1) / (draws - 1))
        half = stats.t.ppf(0.5 + level / 2, draws - 1) * sd / np.sqrt(draws)
    return Interval(mean, mean - half, mean + half)
