"""The temporal figures on hand-computed cases: region flicker, Allan deviation, lag and box jitter."""

import numpy as np
import pandas as pd
import pytest

from wflwv.landmarks import REGIONS
from wflwv.metrics import allan_deviation, box_nmf, lag, motion_correlation, nmf, region_nmf, temporal_scores

SIDE = 100.0  # every test face spans a 100 x 100 box: s_n = sqrt(face area) = 100


def still_face(frames: int, seed: int = 0) -> np.ndarray:
    """(frames, 98, 2): the same face in every frame, its landmarks' box exactly (0, 0)-(100, 100)."""
    points = np.random.default_rng(seed).uniform(10, 90, (98, 2))
    points[0], points[16] = (0, 0), (SIDE, SIDE)
    return np.repeat(points[None], frames, axis=0)


def alternating(frames: int) -> np.ndarray:
    return np.where(np.arange(frames) % 2, 1.0, -1.0)


def test_region_flicker_is_the_nmf_of_that_region_on_the_whole_face_scale():
    gt = still_face(9)
    pred = gt.copy()
    mouth = REGIONS["mouth"]
    pred[:, mouth] += alternating(9)[:, None, None] * np.array([3.0, 4.0])  # +-5 px: a 10 px jump every frame
    gt[4] = np.nan  # an unscored frame: the two pairs touching it are left out
    regions = region_nmf(pred[None], gt[None])
    assert regions["mouth"][0] == pytest.approx(10 / SIDE)
    assert all(regions[name][0] == 0 for name in ("contour", "brows", "nose", "eyes"))
    # the regions partition the face: their squares weighted by size give the whole NMF's square
    whole = nmf(pred[None], gt[None])[0]
    assert whole == pytest.approx(10 / SIDE * np.sqrt(len(mouth) / 98))
    assert sum(len(REGIONS[name]) * regions[name][0] ** 2 for name in REGIONS) / 98 == pytest.approx(whole**2)


def test_allan_deviation_separates_jitter_from_drift():
    frames = 40
    gt = still_face(frames)
    jitter = gt + 2.0 * alternating(frames)[:, None, None] * np.array([1.0, 0.0])  # +-2 px in x
    drift = gt + 0.5 * np.arange(frames)[:, None, None] * np.array([0.0, 1.0])  # 0.5 px a frame in y
    windows = (1, 2, 4, 8)
    jittery = allan_deviation(jitter[None], gt[None], windows)[0]
    drifting = allan_deviation(drift[None], gt[None], windows)[0]
    # jitter: window means +-2 at tau 1 (sigma^2 = (4^2) / 2), 0 for any even window
    assert jittery == pytest.approx([np.sqrt(8) / SIDE, 0, 0, 0], abs=1e-12)
    # drift c n: window means differ by c tau, sigma = c tau / sqrt(2)
    assert drifting == pytest.approx([0.5 * tau / np.sqrt(2) / SIDE for tau in windows])
    gt_with_gap = gt.copy()
    gt_with_gap[20] = np.nan  # windows over the unscored frame are left out; drift's value does not change
    assert allan_deviation(drift[None], gt_with_gap[None], windows)[0] == pytest.approx(drifting)
    assert np.isnan(allan_deviation(drift[None, :10], gt[None, :10], (8,))[0, 0])  # no two windows of 8 in 10 frames


def moving_face(frames: int, period: float = 40.0, delay: float = 0.0) -> np.ndarray:
    """A face swaying sinusoidally, 10 px in x and 6 px in y; `delay` frames late."""
    phase = 2 * np.pi * (np.arange(frames) - delay) / period
    return still_face(frames) + np.stack([10 * np.sin(phase), 6 * np.sin(phase + 1.0)], axis=-1)[:, None, :]


def ema(points: np.ndarray, alpha: float) -> np.ndarray:
    smoothed = points.copy()
    for n in range(1, len(points)):
        smoothed[n] = alpha * points[n] + (1 - alpha) * smoothed[n - 1]
    return smoothed


def lag_of(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(lag(motion_correlation(pred[None], gt[None]))[0])


def test_lag_is_the_delay_of_a_shift_and_the_phase_delay_of_an_ema():
    frames, period = 400, 40.0
    gt = moving_face(frames, period)
    assert lag_of(gt, gt) == pytest.approx(0.0, abs=1e-9)
    for delay in (3.0, 2.5, 0.3):
        assert lag_of(moving_face(frames, period, delay), gt) == pytest.approx(delay, abs=0.02)
    alpha = 0.5
    omega = 2 * np.pi / period
    phase_delay = np.arctan2((1 - alpha) * np.sin(omega), 1 - (1 - alpha) * np.cos(omega)) / omega  # about (1 - alpha) / alpha
    assert lag_of(ema(gt, alpha), gt) == pytest.approx(phase_delay, abs=0.02)
    assert lag_of(gt, moving_face(frames, period, 3.0)) == pytest.approx(-3.0, abs=0.02)  # ahead of the truth: negative


def test_box_jitter_counts_what_the_face_does_not_explain():
    frames = 8
    gt = moving_face(frames)
    extent = np.concatenate([gt.min(axis=1), gt.max(axis=1)], axis=1)
    following = extent + np.array([-10.0, -12.0, 10.0, 12.0])  # a box moving with the face
    assert box_nmf(following[None], gt[None])[0] == pytest.approx(0.0, abs=1e-12)
    shaky = following + alternating(frames)[:, None] * np.array([1.5, 2.0, 1.5, 2.0])  # both corners +-2.5 px
    scale = np.sqrt((extent[:, 2] - extent[:, 0]) * (extent[:, 3] - extent[:, 1]))
    expected = np.sqrt(np.mean((5.0 / scale[1:]) ** 2))
    assert box_nmf(np.concatenate([shaky, np.ones((frames, 1))], axis=1)[None], gt[None])[0] == pytest.approx(expected)


def test_temporal_scores_pool_videos_and_skip_padding():
    long, short = moving_face(120), moving_face(80)
    gt = np.full((2, 120, 98, 2), np.nan)
    gt[0], gt[1, :80] = long, short
    pred = gt.copy()
    pred[0], pred[1, :80] = ema(long, 0.5), ema(short, 0.5)
    boxes = np.full((2, 120, 4), np.nan)
    boxes[0], boxes[1, :80] = (np.concatenate([face.min(axis=1), face.max(axis=1)], axis=1) for face in (long, short))
    scores = temporal_scores(pred, gt, boxes)
    assert set(scores.video) == {"nmf_contour", "nmf_brows", "nmf_nose", "nmf_eyes", "nmf_mouth", *(f"allan_{t}" for t in (1, 2, 4, 8, 16, 32)), "box_nmf", "lag"}
    assert scores.overall["nmf_mouth"] == pytest.approx(scores.video["nmf_mouth"].mean())
    assert scores.video["box_nmf"] == pytest.approx([0, 0], abs=1e-12)
    assert scores.video["lag"] == pytest.approx([lag_of(pred[0], gt[0]), lag_of(pred[1, :80], gt[1, :80])])
    assert 0.9 < scores.overall["lag"] < 1.1  # an EMA of 0.5 on slow motion lags about one frame
    scaled = scores.scaled(100.0)
    assert scaled.overall["nmf_mouth"] == pytest.approx(100 * scores.overall["nmf_mouth"]) and scaled.overall["lag"] == scores.overall["lag"]


def test_the_bench_leaderboards_carry_the_temporal_figures(bench_run):
    out, boards = bench_run
    board = pd.read_parquet(out / "video_leaderboard.parquet")
    per_video = pd.read_parquet(out / "per_video.parquet")
    for split in ("hard", "easy"):
        assert {f"nmf_{r}_{split}" for r in REGIONS} | {f"allan_{t}_{split}" for t in (1, 2, 4, 8, 16, 32)} | {f"lag_{split}", f"box_nmf_{split}"} <= set(board.columns)
    assert {"nmf_mouth", "allan_1", "lag", "box_nmf"} <= set(per_video.columns)
    # the tiny world's boxes move with its faces; raw predictions flicker in every region
    assert np.allclose(board["box_nmf_hard"], 0) and (board.loc[board["method"] == "raw", "nmf_mouth_hard"] > 0).all()
    hard = per_video[per_video["split"] == "hard"].groupby(["model", "method"], sort=False)["nmf_mouth"].mean()
    assert np.allclose(board.set_index(["model", "method"]).loc[hard.index, "nmf_mouth_hard"], hard)
    summary = (out / "video_summary.md").read_text().splitlines()[0]
    assert "NMF mouth hard" in summary and "NMF eyes hard" in summary and "lag hard" in summary
