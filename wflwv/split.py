"""wflwv split: rank the labelled videos by the ensemble's disagreement; the top K are hard, the bottom K easy.

A video's score is the mean over its frames of the mean over the landmarks of the ensemble variance
divided by the frame's face area (the area of the labels' bounding box, NMF's normaliser): a
dimensionless disagreement, so that a large face is not ranked hard for its size alone, and a mean
over frames, so that neither a video's length nor one glitched frame decides its rank.
"""

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from wflwv import io
from wflwv.data.videoset import VideoSet, check_finite, load_array, variance_path
from wflwv.errors import WflwvError
from wflwv.metrics import face_area
from wflwv.pipeline.stage import Executor, Stage, run_stage

SCORES_NAME = "split_scores.parquet"


def video_score(landmarks: np.ndarray, variance: np.ndarray) -> float:
    """Mean over frames of the mean over landmarks of variance / face area, for (frames, N, 2) labels and (frames, N) variance."""
    return float(np.mean(variance.mean(axis=1) / face_area(landmarks)))


def load_variance(build: Path, video_id: str, shape: tuple[int, int]) -> np.ndarray:
    """The labels' variance (frames, N), checked to have the labels' `shape` (frames, N)."""
    path = variance_path(build, video_id)
    if not path.is_file():
        raise WflwvError(path, "no such variance file: label the video first (wflwv label)")
    variance = load_array(path, "variance")
    if variance.shape != tuple(shape):
        raise WflwvError(path, f"variance has shape {variance.shape}, expected {tuple(shape)} like its landmarks")
    check_finite(path, variance, "variances")
    return variance


def split(build: Path, k: int, executor: Executor = Executor(), force: bool = False) -> pd.DataFrame:
    """Score every labelled video of BUILD (those that failed an earlier stage have no labels), write the two
    ID lists and BUILD/split_scores.parquet; returns the scores by rank.

    Each video's score is an item of the stage `split` keyed by its labels and variance, so a rerun
    scores again only the videos whose labels changed."""
    build = Path(build)
    videos = VideoSet(build)
    ids = [video_id for video_id in videos.ids() if videos.landmarks_path(video_id).is_file()]
    if k < 1 or 2 * k > len(ids):
        raise WflwvError(build / "landmarks", f"cannot take {k} hard and {k} easy videos from {len(ids)} labelled: K must be between 1 and half of them")
    stage = Stage("split", build / "stages" / "split", functools.partial(score_item, build), inputs=functools.partial(score_inputs, build))
    manifest = run_stage(stage, ids, executor, force)
    failed = manifest[manifest["status"] != "done"]
    if len(failed):
        raise WflwvError(None, failed["reason"].iloc[0])
    table = manifest[["id", "score"]].sort_values(["score", "id"], ascending=[False, True], ignore_index=True)
    table["rank"] = np.arange(1, len(table) + 1)
    table["split"] = np.where(table["rank"] <= k, "hard", np.where(table["rank"] > len(table) - k, "easy", ""))
    videos.write_split("hard", table["id"][:k])
    videos.write_split("easy", table["id"][::-1][:k])
    io.save_parquet(build / SCORES_NAME, table)
    return table


def score_item(build: Path, video_id: str) -> dict:
    landmarks = VideoSet(build).load_landmarks(video_id)
    return {"score": video_score(landmarks, load_variance(build, video_id, landmarks.shape[:2]))}


def score_inputs(build: Path, video_id: str) -> dict:
    return {"landmarks": VideoSet(build).landmarks_path(video_id), "variance": variance_path(build, video_id)}
