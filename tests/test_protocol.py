"""The released protocol against an independent re-implementation of the authors' evaluation.

The re-implementation (benchmarks/authors_loop.py) is written from the conventions measured against the
authors' inference code (their crop, colour handling, normalisation, solver and soft-argmax); it uses
wflwv only to load the checkpoint and to read the network's two parts (the stem and the cell f).
"""

import numpy as np
import pytest
import torch

from benchmarks.authors_loop import read_bgr_frames, video_landmarks
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.inference import VideoStream, predict_videos
from wflwv.models import load_checkpoint

from conftest import ldeq_checkpoint, write_wflwv

RWR_CAP = 1


def authors_video(model, video_path, boxes: np.ndarray, rwr: bool) -> np.ndarray:
    """Landmarks (frames, 98, 2) in frame pixels, one frame at a time as the authors' sequential evaluation runs."""
    return np.stack(list(video_landmarks(model, read_bgr_frames(video_path), boxes, rwr, RWR_CAP)))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> VideoSet:
    return VideoSet(write_wflwv(tmp_path_factory.mktemp("released") / "WFLW_V"))


def released_model(folder, solver: str) -> torch.nn.Module:
    """A released-format checkpoint (args and state_dict only) of a contractive cell, loaded back."""
    model, _ = load_checkpoint(ldeq_checkpoint(folder / "final.pth.tar", seed=5, released=True, solver=solver, max_iters=6, anderson_m=3))
    return model.eval()


def wflwv_predictions(model, videos: VideoSet, protocol: str, rwr: bool) -> dict[str, np.ndarray]:
    items = {i: videos.load(i) for i in videos.ids()}
    streams = (VideoStream(i, iter_frames(item.frames_path), item.boxes) for i, item in items.items())
    run = predict_videos(model, streams, slots=3, warm_start=rwr, max_iters=RWR_CAP if rwr else None, protocol=protocol, channels_last=False)
    return {p.id: p.landmarks for p in run}


@pytest.mark.parametrize("solver", ["fpi", "anderson"])
@pytest.mark.parametrize("rwr", [False, True], ids=["cold start", "RwR"])
def test_the_released_protocol_gives_the_authors_landmarks(videos, tmp_path, solver, rwr):
    model = released_model(tmp_path, solver)
    authors = {i: authors_video(model, videos.load(i).frames_path, videos.load(i).boxes, rwr) for i in videos.ids()}
    released = wflwv_predictions(model, videos, "released", rwr)
    own = wflwv_predictions(model, videos, "wflwv", rwr)
    gap = np.concatenate([np.linalg.norm(released[i] - authors[i], axis=-1).ravel() for i in videos.ids()])
    own_gap = np.concatenate([np.linalg.norm(own[i] - authors[i], axis=-1).ravel() for i in videos.ids()])
    # 0.01 px rather than the 0.05 asked for: on this contractive cell, dropping the extra evaluation or giving the
    # first RwR frame the full cap moves the median by only 0.02-0.06 px (the warp's 1/32-pixel grid makes the rest)
    assert np.median(gap) < 0.01, np.median(gap)
    assert np.median(own_gap) > 0.1  # the conventions matter: wflwv's own protocol is measurably elsewhere
