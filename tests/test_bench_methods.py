"""Issue 28's end-to-end claim on the tiny synthetic world: one `wflwv bench` scores an LDEQ (98 points, and
mapped to 68), a 68-point prediction set, a demo HRNet exported to ONNX, dlib and MediaPipe, every row
naming its scheme and normalisation; and MediaPipe's 478 points, mapped to 68, land on the world's 68-point truth."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import face_video, ldeq_checkpoint, run_main
from wflwv import io
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.inference import VideoStream, predict_videos
from wflwv.methods import load_method
from wflwv.models import create_model, load_config, save_checkpoint
from wflwv.schemes import convert, distance, get_scheme

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("WFLWV_CACHE") or REPO / ".cache")


@pytest.fixture(scope="module")
def world(unlabelled_build) -> Path:
    """The tiny synthetic world that the session's build was cut from: videos/ (98 points) and videos68/."""
    return unlabelled_build.parent / "synth"


def noisy_truth68(world: Path, folder: Path) -> Path:
    """A 68-point prediction set: the world's 68-point truth plus 1 px of noise."""
    rng, videos68 = np.random.default_rng(0), VideoSet(world / "videos68")
    for video_id in videos68.ids():
        truth = videos68.load_landmarks(video_id)
        io.save_npy(folder / f"{video_id}.npy", truth + rng.normal(0, 1.0, truth.shape))
    return folder


def test_one_bench_scores_ldeq_in_98_and_68_a_68_point_set_onnx_dlib_and_mediapipe(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WFLWV_CACHE", str(CACHE))
    torch.manual_seed(0)
    hrnet = tmp_path / "hrnet" / "checkpoint.pth.tar"
    save_checkpoint(hrnet, create_model(load_config("hrnet_demo")))
    exported = run_main(capsys, "export-onnx", hrnet, "--out", tmp_path / "onnx")
    assert exported.returncode == 0 and (tmp_path / "onnx" / "hrnet.toml").is_file()
    ldeq = ldeq_checkpoint(tmp_path / "ldeq.pth.tar", 0)
    result = run_main(
        capsys, "bench", "--model", ldeq, "--scheme", "ibug68", "--predictions", f"faces68={noisy_truth68(world, tmp_path / 'faces68')}",
        "--method", f"onnx:spec={tmp_path / 'onnx' / 'hrnet.toml'}", "--method", "dlib68", "--method", "mediapipe478",
        "--videos", world / "videos", "--out", tmp_path / "bench", "--filters", "none", "--rwr-iters", "1", "--slots", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(tmp_path / "bench" / "video_leaderboard.parquet")
    raw = table[table["method"] == "raw"].set_index("model")
    expected = {"ldeq": "wflw98", "ldeq @ibug68": "ibug68", "faces68": "ibug68", "onnx hrnet": "wflw98", "onnx hrnet @ibug68": "ibug68",
                "dlib68": "ibug68", "mediapipe478": "ibug68"}  # fmt: skip
    assert raw["scheme"].to_dict() == expected
    assert (table["normalisation"] == "interocular").all() and table["scheme"].isin(["wflw98", "ibug68"]).all()
    assert np.isfinite(raw[["nme_hard", "nme_easy"]].to_numpy()).all()
    assert raw.loc["faces68", "nme_hard"] < raw.loc["dlib68", "nme_hard"]  # 1 px of noise beats a real model on cartoon faces
    methods = ["onnx hrnet", "dlib68", "mediapipe478"]
    assert (raw.loc[methods, "fps"] > 0).all() and np.isnan(raw.loc["faces68", "fps"])  # measured for methods, unknown for a set
    verified = run_main(capsys, "leaderboard", "merge", tmp_path / "bench", "--verify", world / "videos", "--out", tmp_path / "merged")
    assert verified.returncode == 0, verified.stderr  # every row recomputed in its own scheme, the "@ibug68" copies included


def test_a_scheme_no_entrant_converts_to_is_refused_in_one_line(world, tmp_path, capsys):
    ldeq = ldeq_checkpoint(tmp_path / "ldeq.pth.tar", 0)
    result = run_main(capsys, "bench", "--model", ldeq, "--scheme", "mediapipe478", "--videos", world / "videos", "--out", tmp_path / "bench")
    assert (result.returncode, result.stderr.count("\n")) == (2, 1)
    assert result.stderr == f"error: {world / 'videos'}: --scheme mediapipe478: no entrant can be scored on it (the videos are wflw98, the entrants wflw98)\n"
    assert not (tmp_path / "bench" / "cache").exists()  # refused before the model ran


FRAMES = range(0, 120, 20)  # six frames of each video, two thirds of a second apart


def test_mediapipe_mapped_to_68_lands_on_the_synthetic_68_point_truth(world, monkeypatch):
    monkeypatch.setenv("WFLWV_CACHE", str(CACHE))
    videos68, mediapipe = VideoSet(world / "videos68"), load_method("mediapipe478")
    errors = []
    for video_id in videos68.ids():
        frames = np.stack([frame for index, frame in enumerate(iter_frames(videos68.video_path(video_id))) if index in FRAMES])
        truth = videos68.load_landmarks(video_id)[list(FRAMES)]
        points = convert(mediapipe.predict(frames, videos68.load_boxes(video_id)[list(FRAMES), :4]), "mediapipe478", "ibug68")
        errors.append(np.linalg.norm(points - truth, axis=-1) / distance(truth, get_scheme("ibug68"), "interocular")[:, None])
    errors = np.concatenate(errors)  # (faces, 68) in inter-ocular units
    # Measured (tiny world, seed 0, 24 faces): 17 faces fit with a median point error of 3-8%; MediaPipe misfits the
    # other 7 (turned cartoon faces: 13-68%). Over the faces, each point's median error is at most 19% (the chin: the two
    # jaw definitions differ) and at most 3% on the eyes. A mirrored table puts the eye corners an inter-ocular distance
    # off, one shifted by a point along an eye 11% (the median gap between neighbours): the eyes' bound catches both.
    assert (np.median(errors, axis=1) < 0.1).mean() >= 0.5
    per_point = np.median(errors, axis=0)
    assert per_point.max() < 0.25 and per_point[36:48].max() < 0.06


def test_export_onnx_gives_the_torch_models_landmarks(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model(load_config("hrnet_demo")).eval()
    save_checkpoint(tmp_path / "hrnet.pth.tar", model)
    assert run_main(capsys, "export-onnx", tmp_path / "hrnet.pth.tar", "--out", tmp_path / "onnx").returncode == 0
    frames, _, boxes = face_video(4, seed=1)
    points = load_method("onnx", spec=tmp_path / "onnx" / "hrnet.toml").predict(frames, boxes)
    (torch_points,) = predict_videos(model, [VideoStream("v", frames, boxes)], slots=1, warm_start=False, prefetch=False)
    np.testing.assert_allclose(points, torch_points.landmarks, atol=2e-4)  # frame pixels; faces span ~40 px
