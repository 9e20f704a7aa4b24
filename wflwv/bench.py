"""The benchmark: video and still-image leaderboards for several models of any family.

Video (WFLW-V layout): every model runs raw (one prediction per frame; for a DEQ, its cold start),
a DEQ also with RwR at each iteration cap, and every filter's sweep smooths the raw predictions
online, so that each model gets a curve of NME against NMF. Predictions are cached per
(checkpoint digest, run, video) under OUT/predictions/, so a rerun only computes what is missing;
each run's timing is kept beside its predictions as one row per invocation.

Stills (the official WFLW layout or the pre-cropped one): NME, FR10 and AUC10 on the full test set
and its six subsets, with each model's parameters, multiply-adds and batch-1 latency.
"""

import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from rich.progress import track
from torch.utils.flop_counter import FlopCounterMode

from wflwv import io
from wflwv.data.crop import box_to_affine, crop, crops_to_tensor
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoItem, VideoSet
from wflwv.data.wflw import ANNOTATIONS_DIR, ATTRIBUTES, SUBSETS, WflwStills, read_image, read_precropped
from wflwv.errors import WflwvError
from wflwv.filters import FILTERS, TemporalFilter, sweep
from wflwv.inference import DEFAULT_SLOTS, VideoStream, is_deq, predict_videos
from wflwv.metrics import memory, score_images, score_videos
from wflwv.models import load_checkpoint
from wflwv.report import (
    NMF_TABLE_SCALE,
    STILL_SETS,
    Leaderboard,
    best_method,
    plot_ced,
    plot_flicker_trace,
    plot_nme_vs_nmf,
    still_leaderboard,
    video_leaderboard,
    video_summary,
)
from wflwv.stills import predict_crops


# The paper's adaptive RwR: 2 iterations, 1 where the relative residual from the previous frame's z*
# is below this (the frames almost identical). See docs/equilibrium.md for how it was chosen.
ADAPTIVE_TOL = 0.1


@dataclass(frozen=True)
class BenchSettings:
    slots: int = DEFAULT_SLOTS
    rwr_iters: tuple[int, ...] = (1, 2, 3)
    adaptive_tol: float | None = ADAPTIVE_TOL  # RwR (adaptive)'s residual tolerance; None: no such row
    filters: tuple[str, ...] = tuple(FILTERS)
    nmf_definition: str = "paper"
    norm: str = "interocular"
    device: str = "cpu"
    latency_runs: int = 5


@dataclass(frozen=True)
class BenchModel:
    label: str
    checkpoint: Path
    digest: str  # of the checkpoint file: names its prediction cache
    model: torch.nn.Module


@dataclass(frozen=True)
class ModelRun:
    """One way of running a model over the videos."""

    name: str
    warm_start: bool
    max_iters: int | None
    tol: float | None = None  # the solver's tolerance, when not the config's


def load_models(checkpoints: list[Path], device: str) -> list[BenchModel]:
    """The checkpoints' models, labelled by file name (by folder for a file named checkpoint.*); clashes get the digest."""
    models = []
    for path in checkpoints:
        model, _ = load_checkpoint(path, map_location=device)
        stem = path.name.split(".")[0]
        models.append(BenchModel(path.parent.name if stem == "checkpoint" else stem, path, hashlib.sha256(path.read_bytes()).hexdigest()[:12], model))
    labels = [m.label for m in models]
    return [BenchModel(f"{m.label}@{m.digest[:6]}", m.checkpoint, m.digest, m.model) if labels.count(m.label) > 1 else m for m in models]


def model_runs(model: torch.nn.Module, settings: BenchSettings) -> list[ModelRun]:
    runs = [ModelRun("raw", warm_start=False, max_iters=None)]
    if is_deq(model):
        runs += [ModelRun(f"RwR ({cap} it)", warm_start=True, max_iters=cap) for cap in settings.rwr_iters]
        if settings.adaptive_tol is not None:
            runs.append(ModelRun(f"RwR (adaptive, {settings.adaptive_tol:g})", warm_start=True, max_iters=2, tol=settings.adaptive_tol))
    return runs


def filter_settings(settings: BenchSettings) -> dict[str, TemporalFilter]:
    return {f.describe(): f for name in settings.filters for f in sweep(name)}


def run_bench(checkpoints: list[Path], out: Path, videos: Path | None = None, stills: Path | None = None, settings: BenchSettings = BenchSettings(), force: bool = False) -> dict[str, Leaderboard]:
    """The leaderboards of the models on the videos and/or stills given, written to `out` with their plots and bench.json."""
    if videos is None and stills is None:
        raise ValueError("give videos, stills or both")
    models = load_models(checkpoints, settings.device)
    manifest = {
        "videos": str(videos.resolve()) if videos else None,
        "stills": str(stills.resolve()) if stills else None,
        "models": [{"label": m.label, "checkpoint": str(m.checkpoint.resolve()), "digest": m.digest, "deq": is_deq(m.model),
                    "runs": {run.name: f"predictions/{m.digest}/{slug(run.name)}" for run in model_runs(m.model, settings)}} for m in models],
    }  # fmt: skip
    boards = {}
    if stills is not None:
        boards["stills"] = bench_stills(models, stills, out, settings)
    if videos is not None:
        boards["videos"], manifest["splits"] = bench_videos(models, videos, out, settings, force)
    io.save_text(out / "bench.json", json.dumps(manifest, indent=2) + "\n")
    return boards


def bench_videos(models: list[BenchModel], root: Path, out: Path, settings: BenchSettings, force: bool) -> tuple[Leaderboard, dict[str, list[str]]]:
    videos = VideoSet(root)
    all_ids = videos.ids()
    if not all_ids:
        raise WflwvError(root, "no videos found (expected videos/<ID>.mp4)")
    splits = {name: videos.ids(name) for name in ("hard", "easy") if videos.has_split(name)} or {"all": all_ids}
    items = {video_id: videos.load(video_id) for video_id in sorted({i for ids in splits.values() for i in ids})}
    filters = filter_settings(settings)
    nmf_scale = NMF_TABLE_SCALE[settings.nmf_definition]
    rows, per_video = [], []
    for bench_model in models:
        for run in model_runs(bench_model.model, settings):
            predictions, fps = predict_run(bench_model.model, items, run, out / "predictions" / bench_model.digest / slug(run.name), settings, force)
            iterations = np.mean(np.concatenate([p["iterations"] for p in predictions.values()]))
            curve = "raw" if run.name == "raw" else "rwr"
            methods = {run.name: (curve, {i: p["landmarks"] for i, p in predictions.items()})}
            if run.name == "raw":
                raw = methods["raw"][1]
            if not run.warm_start:
                methods |= {label: (f.name, {i: f.apply_online(p["landmarks"], items[i].fps) for i, p in predictions.items()}) for label, f in filters.items()}
            for method, (curve, landmarks) in methods.items():
                row = {"model": bench_model.label, "method": method, "curve": curve}
                for split, ids in splits.items():
                    scores = score_videos(padded([landmarks[i] for i in ids]), padded([items[i].landmarks for i in ids]), norm=settings.norm, nmf_definition=settings.nmf_definition)
                    kept = memory(padded([landmarks[i] for i in ids]), padded([raw[i] for i in ids]))
                    row |= {f"nme_{split}": 100 * scores.nme, f"nmf_{split}": nmf_scale * scores.nmf, f"memory_{split}": kept}
                    per_video += [{"model": bench_model.label, "method": method, "split": split, "id": i, "nme": 100 * e, "nmf": nmf_scale * f} for i, e, f in zip(ids, scores.video_nme, scores.video_nmf)]
                rows.append(row | {"solver_iters_per_frame": iterations, "fps": fps})
    board = video_leaderboard(pd.DataFrame(rows), settings.norm, settings.nmf_definition)
    board.write(out)
    video_summary(board).write(out)
    io.save_parquet(out / "per_video.parquet", pd.DataFrame(per_video))
    plot_nme_vs_nmf(board, out / "nme_vs_nmf.png")
    plot_worst_flicker(board, pd.DataFrame(per_video), models, items, out, filters, next(iter(splits)))
    return board, splits


def predict_run(model, items: dict[str, VideoItem], run: ModelRun, folder: Path, settings: BenchSettings, force: bool) -> tuple[dict, float]:
    """Predictions of one run for every video (cached per video) and its frames per second."""
    todo = [i for i in items if force or not (folder / f"{i}.npz").exists()]
    if todo:
        streams = (VideoStream(i, iter_frames(items[i].frames_path), items[i].boxes) for i in todo)
        start, frames = time.perf_counter(), 0
        predictions = predict_videos(model, streams, slots=settings.slots, warm_start=run.warm_start, max_iters=run.max_iters, tol=run.tol, device=settings.device)
        for prediction in track(predictions, total=len(todo), description=f"{run.name}: videos"):
            save_npz(folder / f"{prediction.id}.npz", landmarks=prediction.landmarks, iterations=prediction.iterations, residuals=prediction.residuals)
            frames += len(prediction.landmarks)
        timing_path = folder / "timing.parquet"
        earlier = pd.read_parquet(timing_path) if timing_path.exists() and not force else pd.DataFrame()
        io.save_parquet(timing_path, pd.concat([earlier, pd.DataFrame([{"frames": frames, "seconds": time.perf_counter() - start}])]))
    timing = pd.read_parquet(folder / "timing.parquet")
    predictions = {i: dict(np.load(folder / f"{i}.npz")) for i in items}
    return predictions, timing.frames.sum() / timing.seconds.sum()


def plot_worst_flicker(board: Leaderboard, per_video: pd.DataFrame, models: list[BenchModel], items: dict[str, VideoItem], out: Path, filters: dict[str, TemporalFilter], split: str) -> None:
    """The paper's figure 2 on the video of `split` where the first DEQ (else the first model) flickers most:
    the trajectory of its most flickering landmark for ground truth, raw, the best RwR and the best filter."""
    bench_model = next((m for m in models if is_deq(m.model)), models[0])
    raw = per_video[(per_video["model"] == bench_model.label) & (per_video["method"] == "raw") & (per_video["split"] == split)]
    video_id = raw.loc[raw["nmf"].idxmax(), "id"]
    item, runs = items[video_id], out / "predictions" / bench_model.digest
    raw_points = np.load(runs / "raw" / f"{video_id}.npz")["landmarks"]
    jumps = np.linalg.norm(np.diff(item.landmarks - raw_points, axis=0), axis=-1)  # (frames - 1, 98)
    landmark = int(np.argmax(np.sqrt(np.nanmean(jumps**2, axis=0))))
    series = {"raw": raw_points}
    if is_deq(bench_model.model):
        rwr = best_method(board.table, bench_model.label, "rwr", split)
        series[rwr] = np.load(runs / slug(rwr) / f"{video_id}.npz")["landmarks"]
    table = board.table[~board.table["curve"].isin(["raw", "rwr"])]
    if len(table):
        best_filter = best_method(table.assign(curve="filter"), bench_model.label, "filter", split)
        series[best_filter] = filters[best_filter].apply_online(raw_points, item.fps)
    title = f"{bench_model.label}, video {video_id} ({split}), landmark {landmark}: the highest flicker"
    plot_flicker_trace(item.landmarks[:, landmark], {name: points[:, landmark] for name, points in series.items()}, title, out / "flicker.png")


@dataclass(frozen=True)
class StillFaces:
    """Test faces of a still set: where each crop comes from, its ground truth, and the sets that score it."""

    images: list[Path]
    boxes: np.ndarray  # (N, 4) the square region of each image the crop covers, before extra_scale
    extra_scale: float
    landmarks: np.ndarray  # (N, 98, 2) image pixels
    sets: dict[str, np.ndarray]  # "full" and each subset -> indices into the faces

    def affines(self, size: int) -> np.ndarray:
        return np.stack([box_to_affine(box, size, self.extra_scale) for box in self.boxes])


def read_still_faces(root: Path) -> StillFaces:
    """The test faces of the official WFLW layout (subsets by attribute flag) or of the pre-cropped one (subsets by folder)."""
    if (root / ANNOTATIONS_DIR).is_dir():
        stills = WflwStills(root)
        faces = stills.faces("test")
        if not faces:
            raise WflwvError(stills.annotation_path("test"), "the test set has no faces")
        flags = np.stack([f.attributes for f in faces])
        sets = {"full": np.arange(len(faces))} | {s: np.flatnonzero(flags[:, ATTRIBUTES.index(flag)]) for s, flag in SUBSETS.items()}
        return StillFaces([stills.image_path(f) for f in faces], np.stack([f.box for f in faces]), 1.2, np.stack([f.landmarks for f in faces]), sets)
    if not (root / "test.txt").is_file():
        raise WflwvError(root, f"neither the official WFLW layout ({ANNOTATIONS_DIR}/) nor the pre-cropped one (test.txt, test/)")
    images, sizes, landmarks, sets = [], [], [], {}
    for name in STILL_SETS:
        split = "test" if name == "full" else f"test_{name}"
        if split != "test" and not (root / f"{split}.txt").is_file():
            sets[name] = np.zeros(0, dtype=int)
            continue
        names, folder, points01 = read_precropped(root, split)
        sets[name] = np.arange(len(images), len(images) + len(names))
        paths = [folder / n for n in names]
        split_sizes = np.array([image_size(path) for path in paths], dtype=float).reshape(-1, 2)
        images, sizes = images + paths, sizes + [split_sizes]
        landmarks.append(points01 * split_sizes[:, None, :])
    sizes = np.concatenate(sizes)
    return StillFaces(images, np.concatenate([np.zeros_like(sizes), sizes], axis=1), 1.0, np.concatenate(landmarks), sets)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image, from its header."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError):
        raise WflwvError(path, "not a readable image") from None


def bench_stills(models: list[BenchModel], root: Path, out: Path, settings: BenchSettings) -> Leaderboard:
    faces = read_still_faces(root)
    if not len(faces.sets["full"]):
        raise WflwvError(root / "test.txt", "the test set has no faces")
    rows, per_image = [], []
    for bench_model in models:
        model = bench_model.model
        predictions = predict_crops(model, (read_image(path) for path in faces.images), faces.affines(model.args.im_size), device=settings.device)
        row = {"model": bench_model.label} | model_cost(model, faces, settings)
        for name in STILL_SETS:
            index = faces.sets[name]
            if len(index):
                scores = score_images(predictions[index], faces.landmarks[index], norm=settings.norm)
                row |= {f"nme_{name}": 100 * scores.nme, f"fr10_{name}": 100 * scores.fr10, f"auc10_{name}": 100 * scores.auc10, f"images_{name}": len(index)}
                per_image += [{"model": bench_model.label, "subset": name, "image": str(faces.images[i]), "nme": 100 * e} for i, e in zip(index, scores.image_nme)]
            else:
                row |= {f"nme_{name}": np.nan, f"fr10_{name}": np.nan, f"auc10_{name}": np.nan, f"images_{name}": 0}
        rows.append(row)
    board = still_leaderboard(pd.DataFrame(rows), settings.norm)
    board.write(out)
    io.save_parquet(out / "per_image.parquet", pd.DataFrame(per_image))
    plot_ced(pd.DataFrame(per_image), out / "ced.png")
    return board


def model_cost(model: torch.nn.Module, faces: StillFaces, settings: BenchSettings) -> dict[str, float]:
    """Parameters (M), multiply-adds (M) of one forward pass on the first test face, and its median batch-1 latency (ms)."""
    size = model.args.im_size
    image = crops_to_tensor(crop(read_image(faces.images[0]), faces.affines(size)[0], size)[None]).to(settings.device)
    model.eval()
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model(image)
        seconds = []
        for _ in range(settings.latency_runs + 1):  # the first run warms up
            start = time.perf_counter()
            model(image)
            seconds.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    return {"params_m": params / 1e6, "macs_m": counter.get_total_flops() / 2 / 1e6, "latency_ms": 1000 * statistics.median(seconds[1:])}


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
