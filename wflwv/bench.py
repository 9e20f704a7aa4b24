"""The video benchmark: LDEQ cold start, LDEQ + RwR and LDEQ + EMA on a WFLW-V-layout folder.

Predictions are cached per (checkpoint, run, video) under OUT/predictions/, so a rerun only computes what is
missing; each run's timing is kept beside its predictions as one row per invocation.
"""

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import track

from wflwv import io
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoItem, VideoSet
from wflwv.errors import WflwvError
from wflwv.filters import EMA
from wflwv.inference import VideoStream, predict_videos
from wflwv.metrics import score_videos
from wflwv.models import load_checkpoint
from wflwv.report import NMF_TABLE_SCALE, Leaderboard, plot_nme_vs_nmf


@dataclass(frozen=True)
class BenchSettings:
    slots: int = 8
    rwr_iters: tuple[int, ...] = (1, 2, 3)
    ema_alphas: tuple[float, ...] = (0.3, 0.5, 0.7)
    nmf_definition: str = "paper"
    norm: str = "interocular"
    device: str = "cpu"


@dataclass(frozen=True)
class ModelRun:
    """One way of running the model over the videos."""

    name: str
    warm_start: bool
    max_iters: int | None


def model_runs(settings: BenchSettings) -> list[ModelRun]:
    return [ModelRun("LDEQ cold start", warm_start=False, max_iters=None)] + [
        ModelRun(f"LDEQ + RwR ({cap} it)", warm_start=True, max_iters=cap) for cap in settings.rwr_iters
    ]


def run_bench(videos_root: Path, checkpoint: Path, out: Path, settings: BenchSettings = BenchSettings(), force: bool = False) -> Leaderboard:
    model, _ = load_checkpoint(checkpoint, map_location=settings.device)
    cache = out / "predictions" / hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:12]
    videos = VideoSet(videos_root)
    all_ids = videos.ids()
    if not all_ids:
        raise WflwvError(videos_root, "no videos found (expected videos/<ID>.mp4)")
    splits = {name: videos.ids(name) for name in ("hard", "easy") if videos.has_split(name)} or {"all": all_ids}
    ids = sorted({video_id for split_ids in splits.values() for video_id in split_ids})
    items = {video_id: videos.load(video_id) for video_id in ids}

    nmf_scale = NMF_TABLE_SCALE[settings.nmf_definition]
    rows, per_video = [], []
    for run in model_runs(settings):
        predictions, timing = predict_run(model, items, run, cache / slug(run.name), settings, force)
        methods = {run.name: {i: p["landmarks"] for i, p in predictions.items()}}
        if not run.warm_start:
            for alpha in settings.ema_alphas:
                ema = EMA(alpha)
                methods[f"LDEQ + {ema.describe()}"] = {i: ema.apply(p["landmarks"], items[i].fps) for i, p in predictions.items()}
        iterations = np.mean(np.concatenate([p["iterations"] for p in predictions.values()]))
        for method, landmarks in methods.items():
            row = {"method": method, "solver_iters_per_frame": iterations, "fps": timing}
            for split, split_ids in splits.items():
                scores = score_videos(padded([landmarks[i] for i in split_ids]), padded([items[i].landmarks for i in split_ids]), norm=settings.norm, nmf_definition=settings.nmf_definition)
                row |= {f"nme_{split}": 100 * scores.nme, f"nmf_{split}": nmf_scale * scores.nmf}
                per_video += [{"method": method, "split": split, "id": i, "nme": 100 * e, "nmf": nmf_scale * f} for i, e, f in zip(split_ids, scores.video_nme, scores.video_nmf)]
            rows.append(row)

    board = Leaderboard(pd.DataFrame(rows), norm=settings.norm, nmf_definition=settings.nmf_definition, splits=tuple(splits))
    board.write(out)
    io.save_parquet(out / "per_video.parquet", pd.DataFrame(per_video))
    plot_nme_vs_nmf(board, out / "nme_vs_nmf.png")
    return board


def predict_run(model, items: dict[str, VideoItem], run: ModelRun, folder: Path, settings: BenchSettings, force: bool) -> tuple[dict, float]:
    """Predictions of one run for every video (cached per video) and its frames per second."""
    todo = [i for i in items if force or not (folder / f"{i}.npz").exists()]
    if todo:
        streams = (VideoStream(i, iter_frames(items[i].frames_path), items[i].boxes) for i in todo)
        start, frames = time.perf_counter(), 0
        predictions = predict_videos(model, streams, slots=settings.slots, warm_start=run.warm_start, max_iters=run.max_iters, device=settings.device)
        for prediction in track(predictions, total=len(todo), description=f"{run.name}: videos"):
            save_npz(folder / f"{prediction.id}.npz", landmarks=prediction.landmarks, iterations=prediction.iterations, residuals=prediction.residuals)
            frames += len(prediction.landmarks)
        timing_path = folder / "timing.parquet"
        earlier = pd.read_parquet(timing_path) if timing_path.exists() and not force else pd.DataFrame()
        io.save_parquet(timing_path, pd.concat([earlier, pd.DataFrame([{"frames": frames, "seconds": time.perf_counter() - start}])]))
    timing = pd.read_parquet(folder / "timing.parquet")
    predictions = {i: dict(np.load(folder / f"{i}.npz")) for i in items}
    return predictions, timing.frames.sum() / timing.seconds.sum()


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def padded(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack videos of different lengths into (videos, frames, ...), NaN past each video's end."""
    out = np.full((len(arrays), max(len(a) for a in arrays), *arrays[0].shape[1:]), np.nan)
    for row, array in zip(out, arrays):
        row[: len(array)] = array
    return out


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
