"""The benchmark: video and still-image leaderboards for several models of any family, and any prediction set.

Video (WFLW-V layout): every model runs raw (one prediction per frame; for a DEQ, its cold start),
a DEQ also with RwR at each iteration cap, and every filter's sweep smooths the raw predictions
online, so that each model gets a curve of NME against NMF. A prediction set (wflwv.predictions:
any method's landmarks, as files) enters the same way as a model's raw run. Each entrant is scored on
the common point scheme of its landmarks and the video set's (wflwv.schemes: a 98-point model on a
68-point set is scored on 68 points, both mapped), and on each extra scheme asked for that both convert
to; every row names its scheme and normalisation.

Predicting and scoring are separate. Each model's prediction for a video is cached under
OUT/cache/, named by a digest of everything it depends on (the checkpoint, the video file, its
boxes and the run's settings), so that a changed input is recomputed, never read; each run is also
written as a prediction set under OUT/predictions/. Scores are a pure function of the predictions
and the ground truth, with bootstrap intervals over videos (wflwv.uncertainty). Each row of the
video leaderboard is also a leaderboard entry (leaderboard_entries.jsonl) that
`wflwv leaderboard merge` combines with other runs' on the same video set.

Stills (the official WFLW layout or the pre-cropped one): NME, FR10 and AUC10 on the full test set
and its six subsets, with each model's parameters, multiply-adds and batch-1 latency.
"""

import dataclasses
import hashlib
import json
import statistics
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from rich.progress import track

from wflwv import __version__, io
from wflwv.data.crop import box_to_affine, crop, crops_to_tensor
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoItem, video_set_scheme
from wflwv.data.vw300 import open_video_set
from wflwv.data.wflw import ANNOTATIONS_DIR, ATTRIBUTES, SUBSETS, WflwStills, read_image, read_precropped
from wflwv.errors import WflwvError
from wflwv.filters import FILTERS, TemporalFilter, sweep
from wflwv.inference import VideoStream, is_deq, predict_videos
from wflwv.landmarks import N_LANDMARKS
from wflwv.members import fair_items, label_shift, load_member_points
from wflwv.metrics import memory, padded, score_images, score_videos, temporal_scores
from wflwv.models import load_checkpoint, multiply_adds, param_count
from wflwv.predictions import MethodInfo, hold_missing, load_prediction_set, points_scheme, prediction_set_scheme, predictions_digest, read_method, write_prediction_set
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
from wflwv.schemes import common_scheme, convert, convertible, get_scheme, scheme_for_points
from wflwv.stills import predict_crops
from wflwv.tuning import RunChoices, batches_up_to, choose, torch_threads
from wflwv.tuning import apply as apply_choices
from wflwv.uncertainty import RESAMPLES, SEED, bootstrap_interval, paired_difference

ENTRIES_FILE = "leaderboard_entries.jsonl"
MODEL_SCHEME = scheme_for_points(N_LANDMARKS).name  # every model predicts WFLW's points


# The paper's adaptive RwR: 2 iterations, 1 where the relative residual from the previous frame's z*
# is below this (the frames almost identical). See docs/equilibrium.md for how it was chosen.
ADAPTIVE_TOL = 0.1


@dataclass(frozen=True)
class BenchSettings:
    slots: int | None = None  # videos batched together; None: measured per model (wflwv.tuning), as are the layout and threads
    try_compile: bool = False  # also measure the DEQ's cell through torch.compile (a minute or more of compiling per model)
    rwr_iters: tuple[int, ...] = (1, 2, 3)
    adaptive_tol: float | None = ADAPTIVE_TOL  # RwR (adaptive)'s residual tolerance; None: no such row
    filters: tuple[str, ...] = tuple(FILTERS)
    nmf_definition: str = "paper"
    norm: str = "interocular"
    device: str = "cpu"
    latency_runs: int = 5
    resamples: int = RESAMPLES  # bootstrap resamples of the videos (images) behind every interval
    seed: int = SEED
    protocol: str = "wflwv"  # or "released": the authors' crop and solver conventions (docs/protocol.md)
    schemes: tuple[str, ...] = ()  # point schemes to score every entrant on too, where it and the videos convert to them


@dataclass(frozen=True)
class BenchModel:
    label: str
    checkpoint: Path
    digest: str  # of the checkpoint file: names its prediction sets
    model: torch.nn.Module


@dataclass(frozen=True)
class ModelRun:
    """One way of running a model over the videos; every field but the name changes the landmarks."""

    name: str
    warm_start: bool
    max_iters: int | None
    tol: float | None = None  # the solver's tolerance, when not the config's

    @property
    def settings(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "name"}


@dataclass(frozen=True)
class RunPredictions:
    """One run's landmarks on every video (frames, N, 2) in the entrant's scheme, NaN where it gave none, with its cost and what it is."""

    name: str
    landmarks: dict[str, np.ndarray]
    iterations: float  # solver iterations per frame; NaN for a prediction set
    fps: float  # NaN for a prediction set, unless wflwv ran its method (its method.json's fps)
    warm_start: bool
    causal: bool | None
    residual: float = np.nan  # the solver's final residual, median over frames; NaN for a prediction set or a model that is not a DEQ


@dataclass(frozen=True)
class Entrant:
    """A model or a prediction set: its raw run first, then any RwR runs."""

    label: str
    deq: bool
    runs: list[RunPredictions]
    folders: dict[str, str]  # run name -> its prediction set
    scheme: str = "wflw98"  # the point scheme of its landmarks
    converged: bool | None = None  # a DEQ's cold start meets its solver's tolerance (see `converges`); None for the others


def load_models(checkpoints: list[Path], device: str) -> list[BenchModel]:
    """The checkpoints' models, labelled by file name (by folder for a file named checkpoint.*); clashes get the digest."""
    models = []
    for path in checkpoints:
        model, _ = load_checkpoint(path, map_location=device)
        stem = path.name.split(".")[0]
        models.append(BenchModel(path.parent.name if stem == "checkpoint" else stem, path, io.file_digest(path)[:12], model))
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


def run_bench(checkpoints: list[Path], out: Path, videos: Path | None = None, stills: Path | None = None, settings: BenchSettings = BenchSettings(), force: bool = False,
              predictions: dict[str, Path] | None = None) -> dict[str, Leaderboard]:
    """The leaderboards of the models (and, on videos, the prediction sets: label -> folder) on the videos and/or stills given,
    written to `out` with their plots and bench.json."""
    predictions = predictions or {}
    if videos is None and stills is None:
        raise ValueError("give videos, stills or both")
    if not checkpoints and not (videos and predictions):
        raise ValueError("give models, or prediction sets with videos")
    for scheme in settings.schemes:
        get_scheme(scheme)
    models = load_models(checkpoints, settings.device)
    labels = [m.label for m in models] + list(predictions)
    clash = next((label for label in labels if labels.count(label) > 1), None)
    if clash is not None:
        raise WflwvError(predictions.get(clash), f"the name {clash!r} is taken twice: give the prediction set another NAME=")
    manifest = {
        "videos": str(videos.resolve()) if videos else None,
        "stills": str(stills.resolve()) if stills else None,
        "protocol": settings.protocol,
        "models": [{"label": m.label, "checkpoint": str(m.checkpoint.resolve()), "digest": m.digest, "deq": is_deq(m.model),
                    "runs": {run.name: prediction_folder(m, run) for run in model_runs(m.model, settings)}} for m in models],
        "predictions": [{"label": label, "deq": False, "runs": {"raw": str(folder.resolve())}, "method": read_method(folder).to_json()} for label, folder in predictions.items()],
    }  # fmt: skip
    boards = {}
    if stills is not None and models:
        boards["stills"] = bench_stills(models, stills, out, settings)
    if videos is not None:
        boards["videos"], manifest["splits"] = bench_videos(models, predictions, videos, out, settings, force)
        with_residuals(manifest["models"], boards["videos"].table)
    io.save_text(out / "bench.json", json.dumps(manifest, indent=2) + "\n")
    return boards


def with_residuals(entries: list[dict], table: pd.DataFrame) -> None:
    """Each model's entry of bench.json given its runs' final solver residuals (median over frames) and whether it converges."""
    for entry in entries:
        rows = table[(table["model"] == entry["label"]) & table["method"].isin(list(entry["runs"]))]
        entry["final_residual"] = {row.method: None if np.isnan(row.final_residual) else float(row.final_residual) for row in rows.itertuples()}
        converged = None if rows.empty else rows["converged"].iloc[0]
        entry["converged"] = None if converged is None or pd.isna(converged) else bool(converged)


def prediction_folder(bench_model: BenchModel, run: ModelRun) -> str:
    """Where a model run's prediction set goes, relative to the bench folder."""
    return f"predictions/{bench_model.digest}/{slug(run.name)}"


def bench_videos(models: list[BenchModel], predictions: dict[str, Path], root: Path, out: Path, settings: BenchSettings, force: bool) -> tuple[Leaderboard, dict[str, list[str]]]:
    splits, items, inputs, video_scheme = load_videos(root)
    entrants = [set_entrant(label, folder, items, root, video_scheme) for label, folder in predictions.items()]  # checked before any model runs
    check_extra_schemes(root, settings.schemes, video_scheme, [MODEL_SCHEME] * len(models) + [entrant.scheme for entrant in entrants])
    entrants = [model_entrant(m, items, inputs, out, settings, force) for m in models] + entrants
    entrants = [scored for entrant in entrants for scored in in_schemes(entrant, video_scheme, settings.schemes)]
    filters = filter_settings(settings)
    members = load_member_points(root, list(items))  # the labelling ensemble's own points, where the video set has them
    rows, per_video, digests = [], [], {}
    for entrant in entrants:
        member = entrant.label.split(" @")[0]  # an entrant in an extra scheme is labelled "<label> @<scheme>" (in_schemes)
        fair = fair_items(items, members, member)
        truth, against = truth_in(fair, video_scheme, entrant.scheme), "ensemble" if fair is items else f"without {member}"
        raw = {i: hold_missing(points) for i, points in entrant.runs[0].landmarks.items()}
        for method, curve, run, landmarks in entrant_methods(entrant, raw, truth, filters):
            row, videos_scored = score_method({i: hold_missing(p) for i, p in landmarks.items()}, raw, truth, splits, settings)
            missing = {f"missing_{split}": missing_share(landmarks, ids) for split, ids in splits.items()}
            named = {"model": entrant.label, "method": method, "curve": curve, "scheme": entrant.scheme, "normalisation": settings.norm, "labels": against}
            solver = {"solver_iters_per_frame": run.iterations, "fps": run.fps, "causal": run.causal, "final_residual": run.residual, "converged": entrant.converged}
            rows.append(named | row | missing | solver)
            per_video += [{"model": entrant.label, "method": method} | scores for scores in videos_scored]
            digests[entrant.label, method] = predictions_digest(landmarks)
    per_video = pd.DataFrame(per_video)
    shifts = {f"label_shift_{split}": label_shift(members, {i: items[i].landmarks for i in ids}, ids, settings.norm) for split, ids in splits.items()}
    table = with_intervals(pd.DataFrame(rows).assign(**shifts), per_video, ["model", "method"], "split", ("nme", "nmf"), settings)
    table = with_differences(table, per_video, splits, settings)
    board = video_leaderboard(table, settings.norm, settings.nmf_definition)
    board.write(out)
    video_summary(board).write(out)
    io.save_parquet(out / "per_video.parquet", per_video)
    write_entries(out / ENTRIES_FILE, board, digests, video_set_digest(inputs, splits), splits, settings)
    plot_nme_vs_nmf(board, out / "nme_vs_nmf.png")
    plot_worst_flicker(board, per_video, entrants, items, video_scheme, out, filters, next(iter(splits)))
    return board, splits


def check_extra_schemes(root: Path, extra: tuple[str, ...], video_scheme: str, entrant_schemes: list[str]) -> None:
    """Refuse an extra scheme that no entrant would be scored on: neither it nor the videos convert to it."""
    for scheme in extra:
        if not convertible(video_scheme, scheme) or not any(convertible(entrant, scheme) for entrant in entrant_schemes):
            entrants = ", ".join(sorted(set(entrant_schemes)))
            raise WflwvError(root, f"--scheme {scheme}: no entrant can be scored on it (the videos are {video_scheme}, the entrants {entrants})")


def in_schemes(entrant: Entrant, video_scheme: str, extra: tuple[str, ...]) -> list[Entrant]:
    """The entrant with its landmarks in the common scheme of its own and the videos', then in each `extra` scheme
    both convert to (labelled "<label> @<scheme>")."""
    common = common_scheme([entrant.scheme, video_scheme])
    also = [s for s in dict.fromkeys(extra) if s != common and convertible(entrant.scheme, s) and convertible(video_scheme, s)]
    return [in_scheme(entrant, common, entrant.label)] + [in_scheme(entrant, s, f"{entrant.label} @{s}") for s in also]


def in_scheme(entrant: Entrant, scheme: str, label: str) -> Entrant:
    runs = [dataclasses.replace(run, landmarks={i: convert(p, entrant.scheme, scheme) for i, p in run.landmarks.items()}) for run in entrant.runs]
    return dataclasses.replace(entrant, label=label, runs=runs, scheme=scheme)


def truth_in(items: dict[str, VideoItem], video_scheme: str, scheme: str) -> dict[str, VideoItem]:
    """The videos with their ground truth converted to `scheme`."""
    return {i: dataclasses.replace(item, landmarks=convert(item.landmarks, video_scheme, scheme)) for i, item in items.items()}


def load_videos(root: Path) -> tuple[dict[str, list[str]], dict[str, VideoItem], dict[str, dict[str, str]], str]:
    """A video set as benched (WFLW-V or 300-VW layout): its splits, every listed video, the digests of each one's files,
    and its point scheme."""
    videos = open_video_set(root)
    if not videos.ids():
        raise WflwvError(root, "no videos found (expected videos/<ID>.mp4, or 300-VW's <ID>/vid.avi)")
    splits = videos.splits()
    items = {video_id: videos.load(video_id) for video_id in sorted({i for ids in splits.values() for i in ids})}
    return splits, items, {video_id: videos.input_digests(video_id) for video_id in items}, video_set_scheme(videos, items)


def video_set_digest(inputs: dict[str, dict[str, str]], splits: dict[str, list[str]]) -> str:
    """A digest of a video set as benched: every video's files and the split lists."""
    return hashlib.sha256(json.dumps({"videos": inputs, "splits": splits}, sort_keys=True).encode()).hexdigest()


def entrant_methods(entrant: Entrant, raw: dict[str, np.ndarray], items: dict[str, VideoItem], filters: dict[str, TemporalFilter]):
    """(method, curve, run, landmarks) of an entrant: its raw run and every filter setting over it, then its RwR runs."""
    first, *others = entrant.runs
    yield "raw", "raw", first, first.landmarks
    for label, f in filters.items():
        yield label, f.name, first, {i: f.apply_online(points, items[i].fps) for i, points in raw.items()}
    for run in others:
        yield run.name, "rwr", run, run.landmarks


def score_method(landmarks: dict[str, np.ndarray], raw: dict[str, np.ndarray], items: dict[str, VideoItem], splits: dict[str, list[str]], settings: BenchSettings) -> tuple[dict, list[dict]]:
    """A method's NME, NMF and memory on each split and its per-video scores: a function of the predictions and the ground truth only."""
    row, per_video = {}, []
    nmf_scale = NMF_TABLE_SCALE[settings.nmf_definition]
    for split, ids in splits.items():
        predicted, truth = padded([landmarks[i] for i in ids]), padded([items[i].landmarks for i in ids])
        scores = score_videos(predicted, truth, norm=settings.norm, nmf_definition=settings.nmf_definition)
        temporal = temporal_scores(predicted, truth, padded([items[i].boxes[:, :4] for i in ids]), settings.nmf_definition).scaled(nmf_scale)
        row |= {f"nme_{split}": 100 * scores.nme, f"nmf_{split}": nmf_scale * scores.nmf, f"memory_{split}": memory(predicted, padded([raw[i] for i in ids])),
                f"frames_excluded_{split}": scores.frames_excluded}
        row |= {f"{name}_{split}": value for name, value in temporal.overall.items()}
        per_video += [{"split": split, "id": i, "nme": 100 * e, "nmf": nmf_scale * f} | {name: values[k] for name, values in temporal.video.items()}
                      for k, (i, e, f) in enumerate(zip(ids, scores.video_nme, scores.video_nmf))]
    return row, per_video


def missing_share(landmarks: dict[str, np.ndarray], ids: list[str]) -> float:
    """% of the frames of `ids` without landmarks (scored as holding the last ones)."""
    missing = sum(int(np.isnan(landmarks[i]).any(axis=(1, 2)).sum()) for i in ids)
    return 100 * missing / sum(len(landmarks[i]) for i in ids)


def with_intervals(table: pd.DataFrame, per_unit: pd.DataFrame, keys: list[str], group: str, metrics: tuple[str, ...], settings: BenchSettings) -> pd.DataFrame:
    """The table with `<metric>_<part>_low` and `_high` for each part of `group` (split or subset): the bootstrap
    interval of each row's figure over the units behind it (videos or images). Rows are matched on `keys`."""
    bounds = {}
    for (*key, part), units in per_unit.groupby([*keys, group], sort=False):
        interval = bootstrap_interval(units[list(metrics)].to_numpy().T, settings.resamples, settings.seed)
        for metric, low, high in zip(metrics, interval.low, interval.high):
            bounds.setdefault(f"{metric}_{part}_low", {})[tuple(key)] = low
            bounds.setdefault(f"{metric}_{part}_high", {})[tuple(key)] = high
    rows = list(table[keys].itertuples(index=False, name=None))
    return table.assign(**{column: [values.get(row, np.nan) for row in rows] for column, values in bounds.items()})


def with_differences(table: pd.DataFrame, per_video: pd.DataFrame, splits: dict[str, list[str]], settings: BenchSettings) -> pd.DataFrame:
    """The table with each method's paired bootstrap difference in NME and NMF against its own model's raw
    predictions (`<metric>_<split>_vs_raw`) and against that model's best filter setting on the first split
    (`..._vs_filter`), each with `_low`, `_high` and `_p` (the probability that the difference is below zero)."""
    first, columns = next(iter(splits)), {}
    for model, rows in table.groupby("model", sort=False):
        filtered = rows[~rows["curve"].isin(["raw", "rwr"])]
        references = {"raw": "raw", "filter": best_method(filtered.assign(curve="filter"), model, "filter", first) if len(filtered) else None}
        for split, ids in splits.items():
            scores = per_video[(per_video["model"] == model) & (per_video["split"] == split)].set_index(["method", "id"])
            for metric in ("nme", "nmf"):
                values = scores[metric].unstack("id").reindex(index=list(rows["method"]), columns=ids).to_numpy()  # (methods, videos)
                for against, reference in references.items():
                    name = f"{metric}_{split}_vs_{against}"
                    if reference is None:
                        parts = (np.full(len(rows), np.nan),) * 4
                    else:
                        parts = dataclasses.astuple(paired_difference(values, values[list(rows["method"]).index(reference)], settings.resamples, settings.seed))
                    for suffix, part in zip(("", "_low", "_high", "_p"), parts):
                        columns.setdefault(name + suffix, {}).update(zip(rows.index, part))
    return table.assign(**{name: pd.Series(values) for name, values in columns.items()})


def write_entries(path: Path, board: Leaderboard, digests: dict[tuple[str, str], str], video_set: str, splits: dict[str, list[str]], settings: BenchSettings) -> None:
    """One leaderboard entry per method (JSON lines): its row with intervals, the digests of its predictions and of the video set, the version,
    and the entry's own digest (an edit of its row is detected; `wflwv leaderboard merge --verify` recomputes the row)."""
    entries = []
    for row in board.table.to_dict("records"):
        entry = {"model": row["model"], "method": row["method"], "row": {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()},
                 "norm": board.norm, "nmf_definition": board.nmf_definition, "prediction_set": digests[row["model"], row["method"]],
                 "video_set": video_set, "splits": {name: len(ids) for name, ids in splits.items()},
                 "bootstrap": {"resamples": settings.resamples, "seed": settings.seed}, "wflwv_version": __version__}  # fmt: skip
        entries.append(entry | {"entry_digest": entry_digest(json.loads(json.dumps(entry)))})
    io.save_text(path, "".join(json.dumps(entry) + "\n" for entry in entries))


def entry_digest(entry: dict) -> str:
    """A digest of a leaderboard entry (as read back from JSON) without its own digest: binds its row to its prediction and video-set digests."""
    fields = {key: value for key, value in entry.items() if key != "entry_digest"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def set_entrant(label: str, folder: Path, items: dict[str, VideoItem], videos: Path, video_scheme: str) -> Entrant:
    """A prediction set as an entrant: its landmarks, checked against the videos (not linked into them) and their
    point scheme, as its raw run."""
    landmarks = load_prediction_set(folder, {i: item.n_frames for i, item in items.items()}, videos)
    method = read_method(folder)
    scheme = prediction_set_scheme(method, landmarks)
    try:
        common_scheme([scheme, video_scheme])
    except WflwvError as error:
        raise WflwvError(folder, f"{error.problem}: its landmarks are {scheme}, the videos' {video_scheme}") from None
    runs = [RunPredictions("raw", landmarks, np.nan, np.nan if method.fps is None else method.fps, warm_start=False, causal=method.causal)]
    return Entrant(label, False, runs, {"raw": str(folder.resolve())}, scheme)


def model_entrant(bench_model: BenchModel, items: dict[str, VideoItem], inputs: dict[str, dict[str, str]], out: Path, settings: BenchSettings, force: bool) -> Entrant:
    """A model's runs on every video (from the cache where it holds them), each also written as a prediction set."""
    runs, folders = [], {}
    for run in model_runs(bench_model.model, settings):
        predictions = predict_run(bench_model, items, inputs, run, out / "cache", settings, force)
        landmarks = {i: p["landmarks"] for i, p in predictions.items()}
        folders[run.name] = prediction_folder(bench_model, run)
        method = MethodInfo(f"{bench_model.label} {run.name}", f"wflwv bench: {bench_model.checkpoint.name}, run {run.name}", run.settings | {"checkpoint_sha256": bench_model.digest}, causal=True)
        write_prediction_set(out / folders[run.name], landmarks, method)
        frames = sum(len(p) for p in landmarks.values())
        iterations = np.mean(np.concatenate([p["iterations"] for p in predictions.values()]))
        residual = float(np.median(np.concatenate([p["residuals"] for p in predictions.values()])))
        runs.append(RunPredictions(run.name, landmarks, iterations, frames / sum(float(p["seconds"]) for p in predictions.values()), run.warm_start, causal=True, residual=residual))
    scheme = points_scheme(runs[0].landmarks)
    return Entrant(bench_model.label, is_deq(bench_model.model), runs, folders, scheme, converges(bench_model.model, runs[0].residual))


def converges(model: torch.nn.Module, cold_residual: float) -> bool | None:
    """Whether a DEQ's cold start (its raw run, the config's full cap) meets its solver's own tolerance on the median frame; None
    for a model that is not a DEQ. One that does not has no fixed point it reaches: float rounding then decides its landmarks,
    most of all along RwR's chain of frames (20 px between two weight layouts of the same random checkpoint), so its ranks are noise."""
    if not is_deq(model):
        return None
    args = model.args
    return bool(cold_residual <= (args.rel_diff_target if args.stop_mode == "rel" else args.abs_diff_target))


def prediction_key(bench_model: BenchModel, run: ModelRun, protocol: str, inputs: dict[str, str]) -> str:
    """The cache name of a model run's prediction for one video: a digest of everything the landmarks depend on."""
    key = {"checkpoint": bench_model.digest, "run": run.settings, "protocol": protocol, "video": inputs["video"], "boxes": inputs["boxes"]}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def read_cached(path: Path) -> dict | None:
    """A cached prediction, or None where there is none or it is unreadable (then it is recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in ("landmarks", "iterations", "residuals", "seconds")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def predict_run(bench_model: BenchModel, items: dict[str, VideoItem], inputs: dict[str, dict[str, str]], run: ModelRun, cache: Path, settings: BenchSettings, force: bool) -> dict[str, dict]:
    """Predictions of one run for every video, read from the cache where present; each new one is cached with
    its share of the wall time (the time since the previous video finished)."""
    paths = {i: cache / f"{prediction_key(bench_model, run, settings.protocol, inputs[i])}.npz" for i in items}
    predictions = {} if force else {i: cached for i in items if (cached := read_cached(paths[i])) is not None}
    todo = [i for i in items if i not in predictions]
    if todo:
        choices = run_choices(bench_model.model, settings, len(items))
        streams = (VideoStream(i, iter_frames(items[i].frames_path), items[i].boxes) for i in todo)
        with torch_threads(choices.threads):
            solved = predict_videos(apply_choices(bench_model.model, choices), streams, slots=choices.batch, warm_start=run.warm_start, max_iters=run.max_iters, tol=run.tol,
                                    protocol=settings.protocol, device=settings.device, channels_last=choices.channels_last, prefetch=choices.prefetch)  # fmt: skip
            last = time.perf_counter()
            for prediction in track(solved, total=len(todo), description=f"{bench_model.label} {run.name}: videos"):
                now = time.perf_counter()
                arrays = {"landmarks": prediction.landmarks, "iterations": prediction.iterations, "residuals": prediction.residuals, "seconds": np.float64(now - last)}
                save_npz(paths[prediction.id], **arrays)
                predictions[prediction.id], last = arrays, now
    return {i: predictions[i] for i in items}


def run_choices(model: torch.nn.Module, settings: BenchSettings, videos: int) -> RunChoices:
    """The layout, batch (slots, at most the number of videos), threads and compilation that run this model fastest on the
    device, measured once per process; the slots given are kept."""
    batches = batches_up_to(videos) if settings.slots is None else (settings.slots,)
    return choose(model, settings.device, batches=batches, cap=max(settings.rwr_iters, default=2), try_compile=settings.try_compile)


def plot_worst_flicker(board: Leaderboard, per_video: pd.DataFrame, entrants: list[Entrant], items: dict[str, VideoItem], video_scheme: str, out: Path, filters: dict[str, TemporalFilter], split: str) -> None:
    """The paper's figure 2 on the video of `split` where the first DEQ (else the first entrant) flickers most:
    the trajectory of its most flickering landmark for ground truth, raw, the best RwR and the best filter."""
    entrant = next((e for e in entrants if e.deq), entrants[0])
    raw = per_video[(per_video["model"] == entrant.label) & (per_video["method"] == "raw") & (per_video["split"] == split)]
    video_id = raw.loc[raw["nmf"].idxmax(), "id"]
    item, runs = truth_in({video_id: items[video_id]}, video_scheme, entrant.scheme)[video_id], {run.name: run.landmarks[video_id] for run in entrant.runs}
    raw_points = hold_missing(runs["raw"])
    jumps = np.linalg.norm(np.diff(item.landmarks - raw_points, axis=0), axis=-1)  # (frames - 1, N)
    landmark = int(np.argmax(np.sqrt(np.nanmean(jumps**2, axis=0))))
    series = {"raw": raw_points}
    if entrant.deq:
        rwr = best_method(board.table, entrant.label, "rwr", split)
        series[rwr] = runs[rwr]
    table = board.table[(board.table["model"] == entrant.label) & ~board.table["curve"].isin(["raw", "rwr"])]
    if len(table):
        best_filter = best_method(table.assign(curve="filter"), entrant.label, "filter", split)
        series[best_filter] = filters[best_filter].apply_online(raw_points, item.fps)
    title = f"{entrant.label}, video {video_id} ({split}), landmark {landmark}: the highest flicker"
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
        scheme = scheme_for_points(faces.landmarks.shape[1]).name
        row = {"model": bench_model.label, "scheme": scheme, "normalisation": settings.norm} | model_cost(model, faces, settings)
        for name in STILL_SETS:
            index = faces.sets[name]
            if len(index):
                scores = score_images(predictions[index], faces.landmarks[index], norm=settings.norm)
                row |= {f"nme_{name}": 100 * scores.nme, f"fr10_{name}": 100 * scores.fr10, f"auc10_{name}": 100 * scores.auc10, f"images_{name}": len(index)}
                per_image += [{"model": bench_model.label, "subset": name, "image": str(faces.images[i]), "nme": 100 * e} for i, e in zip(index, scores.image_nme)]
            else:
                row |= {f"nme_{name}": np.nan, f"fr10_{name}": np.nan, f"auc10_{name}": np.nan, f"images_{name}": 0}
        rows.append(row)
    per_image = pd.DataFrame(per_image)
    board = still_leaderboard(with_intervals(pd.DataFrame(rows), per_image, ["model"], "subset", ("nme",), settings), settings.norm)
    board.write(out)
    io.save_parquet(out / "per_image.parquet", per_image)
    plot_ced(per_image, out / "ced.png")
    return board


def model_cost(model: torch.nn.Module, faces: StillFaces, settings: BenchSettings) -> dict[str, float]:
    """Parameters (M), multiply-adds (M) of one forward pass on the first test face, and its median batch-1 latency (ms)."""
    size = model.args.im_size
    image = crops_to_tensor(crop(read_image(faces.images[0]), faces.affines(size)[0], size)[None]).to(settings.device)
    model.eval()
    with torch.no_grad():
        seconds = []
        for _ in range(settings.latency_runs + 1):  # the first run warms up
            start = time.perf_counter()
            output = model(image)
            seconds.append(time.perf_counter() - start)
    iterations = int(output.iterations[0]) if is_deq(model) else None  # the solver's, on this face
    return {"params_m": param_count(model) / 1e6, "macs_m": multiply_adds(model, size, iterations) / 1e6, "latency_ms": 1000 * statistics.median(seconds[1:])}


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
