import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from wflwv.bench import BenchSettings, padded, run_bench
from wflwv.filters import EMA
from wflwv.metrics import score_videos
from wflwv.data.videoset import VideoSet
from wflwv.models import create_model, load_config, save_checkpoint

LENGTHS = {"h1": 12, "h2": 9, "e1": 10, "e2": 11}


def face_video(length: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bright disc drifting over a dark frame, with landmarks scattered on it and its box."""
    rng = np.random.default_rng(seed)
    centres = np.array([48.0, 40.0]) + np.cumsum(rng.normal(0, 0.5, (length, 2)), axis=0)
    offsets = rng.uniform(-14, 14, (98, 2))
    offsets[60], offsets[72] = (-10, -4), (10, -4)  # outer eye corners apart, as on a face
    frames = np.zeros((length, 80, 96, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:80, :96]
    for frame, (cx, cy) in zip(frames, centres):
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < 18**2] = (200, 160, 140)
    landmarks = centres[:, None, :] + offsets[None]
    boxes = np.concatenate([centres - 18, centres + 18], axis=1)
    return frames, landmarks, boxes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    videos = VideoSet(root / "videos")
    for seed, (video_id, length) in enumerate(LENGTHS.items()):
        videos.write(video_id, *face_video(length, seed), fps=30)
    videos.write_split("hard", ["h1", "h2"])
    videos.write_split("easy", ["e1", "e2"])
    config = load_config("ldeq_demo")
    checkpoint = root / "model.pth.tar"
    save_checkpoint(checkpoint, create_model(config))
    return root, checkpoint


def test_bench_writes_a_leaderboard_with_every_method(world):
    root, checkpoint = world
    settings = BenchSettings(slots=3, rwr_iters=(1, 2), ema_alphas=(0.5, 0.2))
    board = run_bench(root / "videos", checkpoint, root / "out", settings)
    methods = list(board.table["method"])
    assert methods == ["LDEQ cold start", "LDEQ + ema(alpha=0.5)", "LDEQ + ema(alpha=0.2)", "LDEQ + RwR (1 it)", "LDEQ + RwR (2 it)"]
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.parquet", "per_video.parquet", "nme_vs_nmf.png"):
        assert (root / "out" / name).stat().st_size > 0
    table = board.table.set_index("method")
    assert np.isfinite(table[["nme_hard", "nmf_hard", "nme_easy", "nmf_easy"]].to_numpy()).all()
    # RwR: the first frame of each video gets the full solve, every other frame at most `it` iterations
    frames, cap = sum(LENGTHS.values()), load_config("ldeq_demo")["args"]["max_iters"]
    for it in (1, 2):
        assert table.loc[f"LDEQ + RwR ({it} it)", "solver_iters_per_frame"] <= (it * (frames - 4) + cap * 4) / frames
    # an EMA row scores the cold-start predictions smoothed by that EMA
    cold = {p.stem: np.load(p)["landmarks"] for p in (root / "out" / "predictions").glob("*/ldeq_cold_start/*.npz")}
    videos = VideoSet(root / "videos")
    smoothed = padded([EMA(0.2).apply(cold[i], 30) for i in ("h1", "h2")])
    expected = score_videos(smoothed, padded([videos.load_landmarks(i) for i in ("h1", "h2")]))
    assert table.loc["LDEQ + ema(alpha=0.2)", "nmf_hard"] == pytest.approx(100 * expected.nmf)
    assert table.loc["LDEQ + ema(alpha=0.2)", "nme_hard"] == pytest.approx(100 * expected.nme)
    assert table.loc["LDEQ + ema(alpha=0.2)", "nmf_hard"] != table.loc["LDEQ cold start", "nmf_hard"]
    assert "inter-ocular" in board.markdown and "NMF as in the paper" in board.markdown
    per_video = pd.read_parquet(root / "out" / "per_video.parquet")
    assert len(per_video) == 5 * len(LENGTHS)


def test_bench_rerun_reuses_cached_predictions(world):
    root, checkpoint = world
    settings = BenchSettings(slots=2, ema_alphas=(0.5,))
    first = run_bench(root / "videos", checkpoint, root / "again", settings)
    cached = sorted((root / "again" / "predictions").rglob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    second = run_bench(root / "videos", checkpoint, root / "again", settings)
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    pd.testing.assert_frame_equal(first.table.drop(columns="fps"), second.table.drop(columns="fps"))


def test_bench_names_the_landmarks_file_of_the_wrong_shape(world, tmp_path):
    root, checkpoint = world
    videos = VideoSet(tmp_path / "videos")
    frames, landmarks, boxes = face_video(5, 0)
    videos.write("v", frames, landmarks, boxes, fps=30)
    np.save(videos.landmarks_path("v"), landmarks[:, :68])
    result = subprocess.run(
        [sys.executable, "-c", "from wflwv.cli import main; main()", "bench", "--videos", str(tmp_path / "videos"), "--model", str(checkpoint), "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(videos.landmarks_path("v")) in result.stderr and "98" in result.stderr
