"""wflwv label: an ensemble's averaged heatmaps become a video's labels, its disagreement their variance.

Per frame, every member predicts heatmaps on the crop of the frame's stabilised box, each member at
its own crop size. Each member's maps (probabilities) are resampled to one common grid, the largest
heatmap size among the members, in the same [0, 1] crop coordinates, renormalised and averaged over
the members kept for that frame; the labels are the soft-argmax of the average, mapped back to frame
pixels. A landmark's variance is the mean squared distance, in frame pixels squared, of the kept
members' own points from their mean (the trace of their 2x2 covariance, population form).

Soft-argmax is linear in the map, and the resampling keeps each map's mean point, so the label is
also the mean of the kept members' points (to float precision when the heatmap sizes divide one
another): averaging the heatmaps and averaging the points agree.

A landmark method (wflwv.methods, `--method`) can be a member too. It gives points, not heatmaps: it
enters as a heatmap with all its mass on its point (whose soft-argmax is that point), so that the
label is the mean of every kept member's points, heatmap members' and point members' alike, each
member weighing one. In numbers: with H heatmap members kept whose averaged maps read as point h, and
point members p_1 ... p_P kept, the label is (H h + p_1 + ... + p_P) / (H + P). A point member's points
are converted to the heatmap members' scheme (wflwv.schemes; a method with no map to it is refused), and
a frame where it found no face drops it there, as a correction would. A frame where no member is kept
(point members only, none of which found a face there) gets NaN labels: missing ground truth, which
every score excludes and counts (docs/submission.md); the video's row counts them (unlabelled_frames).

A corrections file drops members for frame ranges of a video, as the paper's authors fixed errors:
a CSV with the header `video_id,member,first_frame,last_frame` (frames 0-based, inclusive). A
video's row records a digest of what it was labelled from (the members' checkpoints, the video, its
boxes and its corrections): change any of them and the next run relabels that video.

Each member runs in the memory layout and on the torch threads measured fastest for its architecture
at the label's batch (wflwv.tuning, once per architecture and process): the labels change by float
rounding only.

Outputs: BUILD/landmarks/<ID>.npy (frames, 98, 2) float32 frame pixels, BUILD/variance/<ID>.npy
(frames, 98) float32 frame pixels squared, BUILD/members/<member>/<ID>.npy each member's own points
(wflwv.members: what leave-one-out scoring reads).
"""

import csv
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wflwv import io
from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, invert_affine, transform_points
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet, validate_id, variance_path
from wflwv.errors import WflwvError
from wflwv.members import member_folder, record_members, save_member_points
from wflwv.methods import LandmarkMethod, method_from_text, method_label
from wflwv.models import CHECKPOINT_NAME, load_checkpoint
from wflwv.models.heatmaps import soft_argmax
from wflwv.pipeline.stage import Executor, Stage, run_stage
from wflwv.schemes import common_scheme, convert, get_scheme, scheme_for_points
from wflwv.tuning import RunChoices, apply, choose, torch_threads

CORRECTIONS_HEADER = ("video_id", "member", "first_frame", "last_frame")
Corrections = dict[str, tuple[tuple[str, int, int], ...]]  # video ID -> (member, first, last frame) in file order


def member_name(path: Path) -> str:
    """A member's name: its run folder for a `wflwv train` checkpoint (RUN/checkpoint.pth.tar), else its file name without suffixes."""
    path = Path(path)
    return path.parent.name if path.name == CHECKPOINT_NAME else path.name.split(".")[0]


def find_members(checkpoints: Sequence[Path] = (), ensemble_dir: Path | None = None) -> tuple[Path, ...]:
    """The members' checkpoints: those given, then every DIR/<name>/checkpoint.pth.tar; names must differ."""
    paths = [Path(p) for p in checkpoints]
    if ensemble_dir is not None:
        found = sorted(Path(ensemble_dir).glob(f"*/{CHECKPOINT_NAME}"))
        if not found:
            raise WflwvError(ensemble_dir, f"no member checkpoints (expected <name>/{CHECKPOINT_NAME} in it)")
        paths += found
    if not paths:
        raise WflwvError(None, "no ensemble members: give --members or --ensemble-dir")
    by_name = {}
    for path in paths:
        if not path.is_file():
            raise WflwvError(path, "no such checkpoint file")
        if member_name(path) in by_name:
            raise WflwvError(path, f"member name {member_name(path)!r} is also that of {by_name[member_name(path)]}")
        by_name[member_name(path)] = path
    return tuple(paths)


def load_members(paths: tuple[Path, ...], device: str) -> list[torch.nn.Module]:
    """The members' models in eval mode on `device`, loaded once per process (again if a checkpoint file changes)."""
    return _load_members(paths, device, tuple(Path(path).stat().st_mtime_ns for path in paths))


@functools.lru_cache(maxsize=1)
def _load_members(paths: tuple[Path, ...], device: str, file_times: tuple[int, ...]) -> list[torch.nn.Module]:
    models = []
    for path in paths:
        model, _ = load_checkpoint(path, map_location=device)
        if not hasattr(model.args, "heatmap_size"):
            raise WflwvError(path, "the model has no heatmaps (no heatmap_size in its args): ensemble members must be heatmap models")
        models.append(model.eval())
    return models


def resampling_matrix(source: int, target: int) -> torch.Tensor:
    """(target, source) linear weights taking a 1-D map on grid i / source to grid j / target.

    Source pixel i sits at target index c = i * target / source and is spread by a hat kernel of
    width w = max(1, target / source) target pixels. The hat keeps the mass and mean position of
    every pixel exactly when w = 1 (downsampling: two-pixel splatting) and when w is an integer
    (upsampling by an integer factor: linear interpolation); otherwise to within a small fraction
    of a pixel. At the edges: pixel 0 keeps width 1, so that none of its mass spills past the
    grid; downsampling, a pixel past the target grid's last point ((target - 1) / target) is put on it.
    """
    centres = torch.clamp(torch.arange(source, dtype=torch.float64) * target / source, max=target - 1)
    widths = torch.clamp(centres + 1, max=max(1.0, target / source))
    offsets = (torch.arange(target, dtype=torch.float64)[:, None] - centres[None, :]) / widths
    return (1 - offsets.abs()).clamp(min=0) / widths


def resample_heatmaps(heatmaps: torch.Tensor, size: int) -> torch.Tensor:
    """Probability maps (..., D, D) resampled to (..., size, size) in the same crop coordinates, each summing to 1."""
    if heatmaps.shape[-1] != size:
        weights = resampling_matrix(heatmaps.shape[-1], size).to(heatmaps)
        heatmaps = weights @ heatmaps @ weights.T
    return heatmaps / heatmaps.sum(dim=(-2, -1), keepdim=True)


def tuned_members(models: Sequence[torch.nn.Module], device: str, batch_size: int) -> list[RunChoices]:
    """Each member's memory layout and torch threads at the label's batch, measured (wflwv.tuning, once per architecture)
    and its layout applied to it."""
    choices = [choose(model, device, batches=(batch_size,)) for model in models]
    for model, choice in zip(models, choices):
        apply(model, choice)
    return choices


def heatmap_members(models: Sequence[torch.nn.Module], frames: np.ndarray, boxes: np.ndarray, keep: np.ndarray, device: str,
                    choices: Sequence[RunChoices] | None) -> tuple[np.ndarray, np.ndarray]:
    """The heatmap members' labels (B, N, 2), the soft-argmax of their kept averaged maps, and their own points (M, B, N, 2)."""
    to_unit_crop = np.stack([box_to_affine(box, size=1) for box in boxes])  # frame pixels -> [0, 1] crop units
    size = max(model.args.heatmap_size for model in models)
    keep_tensor = torch.as_tensor(keep, dtype=torch.float32, device=device)
    crops, total, points = {}, 0.0, []
    with torch.no_grad():
        for index, (model, kept) in enumerate(zip(models, keep_tensor)):
            side = model.args.im_size
            if side not in crops:
                crops[side] = crops_to_tensor(np.stack([crop(frame, side * affine, side) for frame, affine in zip(frames, to_unit_crop)]))
            choice = choices[index] if choices else None
            layout = torch.channels_last if choice and choice.channels_last else torch.contiguous_format
            with torch_threads(choice.threads if choice else None):
                output = model(crops[side].to(device, memory_format=layout))
            total = total + kept[:, None, None, None] * resample_heatmaps(output.heatmaps.float(), size)
            points.append(output.landmarks.float().cpu().numpy())
        labels = soft_argmax(total / keep_tensor[: len(models)].sum(dim=0)[:, None, None, None]).cpu().numpy()
    from_unit_crop = np.stack([invert_affine(affine) for affine in to_unit_crop])
    labels = transform_points(labels.astype(np.float64), from_unit_crop)
    members = transform_points(np.stack(points).astype(np.float64), from_unit_crop)  # (M, B, 98, 2)
    return labels, members


def ensemble_frames(models: Sequence[torch.nn.Module], frames: np.ndarray, boxes: np.ndarray, keep: np.ndarray, device: str = "cpu",
                    choices: Sequence[RunChoices] | None = None, methods: Sequence[LandmarkMethod] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (B, 98, 2), variance (B, 98) and each member's points (M, B, 98, 2; NaN where not kept) of frames (B, H, W, 3) uint8 RGB
    with boxes (B, >=4).

    keep (members, B) bool says which members each frame averages over, the models' rows first and then the
    point-only methods'; every frame keeps one at least. choices: each model's layout and threads
    (tuned_members); None: contiguous input on the current threads.
    """
    if models:
        labels, members = heatmap_members(models, frames, boxes, keep, device, choices)
        scheme = scheme_for_points(members.shape[2]).name
    else:  # point members only: the labels are in their common scheme
        scheme = common_scheme(method.scheme for method in methods)
        members = np.zeros((0, len(frames), get_scheme(scheme).n_points, 2))
        labels = members.sum(axis=0)
    if methods:
        labels, members, keep = with_point_members(labels, members, keep, methods, frames, boxes, scheme)
    weights = keep[:, :, None].astype(np.float64)
    with np.errstate(invalid="ignore"):  # a frame with no member kept: NaN labels and variance (label_video counts them)
        mean = (weights[..., None] * members).sum(axis=0) / weights.sum(axis=0)[..., None]
        variance = (weights * ((members - mean) ** 2).sum(axis=-1)).sum(axis=0) / weights.sum(axis=0)
    return labels, variance, np.where(keep[..., None, None], members, np.nan)


def with_point_members(labels: np.ndarray, members: np.ndarray, keep: np.ndarray, methods: Sequence[LandmarkMethod], frames: np.ndarray, boxes: np.ndarray,
                       scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The heatmap members' labels (B, N, 2) and points (M, B, N, 2) joined by the methods' points in the same scheme: the labels
    become the mean of every kept member's points (a point member is a Dirac heatmap), members (M + P, B, N, 2) and keep
    (M + P, B) grow by the methods, a method dropped on the frames where it found no face. NaN points are never kept."""
    heat = keep[: len(members)]
    points = np.stack([convert(method.predict(frames, boxes[:, :4]), method.scheme, scheme) for method in methods])  # (P, B, N, 2)
    kept = keep[len(members) :] & np.isfinite(points).all(axis=(2, 3))
    total = heat.sum(axis=0) + kept.sum(axis=0)
    weighted = heat.sum(axis=0)[:, None, None] * np.nan_to_num(labels) + (kept[..., None, None] * np.nan_to_num(points)).sum(axis=0)
    with np.errstate(invalid="ignore"):  # no member kept: NaN, a frame without ground truth
        return weighted / total[:, None, None], np.nan_to_num(np.concatenate([members, points])), np.concatenate([heat, kept])


def read_corrections(path: Path, members: Sequence[str], frame_count: Callable[[str], int]) -> Corrections:
    """Parse and check a corrections CSV; frame_count(video_id) gives a video's number of frames.

    Every problem is a WflwvError naming the file and the line: an unknown video or member, frames
    out of range, or a line that would leave a frame with no member at all.
    """
    path = Path(path)
    if not path.is_file():
        raise WflwvError(path, "no such corrections file")
    try:
        reader = csv.reader(StringIO(path.read_bytes().decode("utf-8"), newline=""))
        lines = [(reader.line_num, fields) for fields in reader]  # each row with the line it ends on
    except UnicodeDecodeError as error:
        raise WflwvError(path, f"not UTF-8 text (byte {error.start})") from None
    except csv.Error as error:
        raise WflwvError(path, f"line {reader.line_num}: not CSV ({error})") from None
    if not lines or tuple(field.strip() for field in lines[0][1]) != CORRECTIONS_HEADER:
        raise WflwvError(path, f"line 1: expected the header {','.join(CORRECTIONS_HEADER)}")
    corrections: dict[str, list[tuple[str, int, int]]] = {}
    for number, fields in lines[1:]:
        if not any(field.strip() for field in fields):
            continue
        try:
            video_id, member, first, last = _correction(fields, members, frame_count)
        except WflwvError as error:
            raise WflwvError(path, f"line {number}: {error.problem}") from None
        corrections.setdefault(video_id, []).append((member, first, last))
        uncovered = ~keep_mask(members, corrections[video_id], frame_count(video_id)).any(axis=0)
        if uncovered.any():
            raise WflwvError(path, f"line {number}: leaves frame {int(np.flatnonzero(uncovered)[0])} of {video_id} with no member")
    return {video_id: tuple(rows) for video_id, rows in corrections.items()}


def _correction(fields: list[str], members: Sequence[str], frame_count: Callable[[str], int]) -> tuple[str, str, int, int]:
    if len(fields) != len(CORRECTIONS_HEADER):
        raise WflwvError(None, f"expected {len(CORRECTIONS_HEADER)} fields ({','.join(CORRECTIONS_HEADER)}), found {len(fields)}")
    video_id, member, first, last = (field.strip() for field in fields)
    validate_id(video_id)
    if member not in members:
        raise WflwvError(None, f"unknown member {member!r} (members: {', '.join(members)})")
    try:
        first, last = int(first), int(last)
    except ValueError:
        raise WflwvError(None, f"frames {first!r} and {last!r} are not both integers") from None
    n_frames = frame_count(video_id)
    if not 0 <= first <= last < n_frames:
        raise WflwvError(None, f"frames {first}-{last} are out of range: {video_id} has frames 0-{n_frames - 1}")
    return video_id, member, first, last


def keep_mask(members: Sequence[str], corrections: Iterable[tuple[str, int, int]], n_frames: int) -> np.ndarray:
    """(members, frames) bool: which members each frame averages over once the corrections drop theirs."""
    keep = np.ones((len(members), n_frames), dtype=bool)
    for member, first, last in corrections:
        keep[list(members).index(member), first : last + 1] = False
    return keep


@functools.lru_cache(maxsize=1)
def load_methods(texts: tuple[str, ...]) -> list[LandmarkMethod]:
    """The point-only members (--method NAME[:KEY=VALUE,...]), loaded once per process."""
    return [method_from_text(text) for text in texts]


def label_video(build: Path, checkpoints: tuple[Path, ...], corrections: Corrections, device: str, batch_size: int, video_id: str, methods: tuple[str, ...] = ()) -> dict:
    """Label one video of BUILD (the label stage's item); returns its row."""
    videos = VideoSet(build)
    boxes = videos.load_boxes(video_id)
    models = load_members(checkpoints, device)
    choices = tuned_members(models, device, batch_size)
    keep = keep_mask(all_names(checkpoints, methods), corrections.get(video_id, ()), len(boxes))
    labels, variances, points, start = [], [], [], 0
    for frames in _batches(iter_frames(videos.video_path(video_id)), batch_size):
        stop = start + len(frames)
        if stop > len(boxes):
            raise WflwvError(videos.video_path(video_id), f"video has more frames than its {len(boxes)} boxes")
        batch_labels, batch_variance, batch_points = ensemble_frames(models, np.stack(frames), boxes[start:stop], keep[:, start:stop], device, choices,
                                                                     load_methods(methods))
        labels.append(batch_labels)
        points.append(batch_points)
        variances.append(batch_variance)
        start = stop
    if start != len(boxes):
        raise WflwvError(videos.boxes_path(video_id), f"video has {start} frames, boxes have {len(boxes)}")
    variance, labels = np.concatenate(variances).astype(np.float32), np.concatenate(labels).astype(np.float32)
    save_member_points(build, all_names(checkpoints, methods), video_id, np.concatenate(points, axis=1))
    io.save_npy(variance_path(build, video_id), variance)
    io.save_npy(videos.landmarks_path(video_id), labels)
    unlabelled = int(np.isnan(labels).any(axis=(1, 2)).sum())
    return {"frames": start, "members": len(checkpoints) + len(methods), "corrected_frames": int((~keep).any(axis=0).sum()), "unlabelled_frames": unlabelled,
            "mean_variance": float(np.nanmean(variance)) if unlabelled < start else float("nan")}


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def all_names(checkpoints: Sequence[Path], methods: Sequence[str]) -> list[str]:
    """The members' names: the checkpoints' (member_name), then the methods' (method_label)."""
    return [member_name(path) for path in checkpoints] + [method_label(text) for text in methods]


def label_inputs(build: Path, checkpoints: Sequence[Path], corrections: Corrections, video_id: str, methods: tuple[str, ...] = ()) -> dict:
    """What a video's labels are made from: the members' checkpoints and methods, the video, its boxes and its corrections."""
    from wflwv.methods.run import method_identity

    videos = VideoSet(build)
    members = [[member_name(path), Path(path)] for path in checkpoints]
    members += [[method_label(text), method_identity(text, method)] for text, method in zip(methods, load_methods(methods))]
    return {"members": members, "video": videos.video_path(video_id), "boxes": videos.boxes_path(video_id), "corrections": corrections.get(video_id, [])}


def label(
    build: Path,
    checkpoints: Sequence[Path],
    corrections_path: Path | None = None,
    executor: Executor = Executor(),
    device: str = "cpu",
    batch_size: int = 64,
    force: bool = False,
    methods: Sequence[str] = (),
) -> pd.DataFrame:
    """Label every video of BUILD/videos (those not labelled yet under the same inputs); returns the stage's manifest.
    methods: point-only members, NAME[:KEY=VALUE,...] as wflwv.methods takes them."""
    build, methods = Path(build), tuple(methods)
    checkpoints = find_members(checkpoints) if checkpoints or not methods else ()  # methods alone can label: the real models
    if batch_size < 1:
        raise WflwvError(None, f"batch size must be 1 or more, got {batch_size}")
    videos = VideoSet(build)
    ids = videos.ids()
    if not ids:
        raise WflwvError(build / "videos", "no videos to label (expected videos/<ID>.mp4)")
    if executor.kind == "local":  # load the members before the first video: a bad checkpoint is one error, not a failure per video
        load_members(checkpoints, device)
    load_methods(methods)  # a missing extra or setup refused before any video
    names = all_names(checkpoints, methods)
    if len(set(names)) < len(names):
        raise WflwvError(None, f"two members are named alike: {', '.join(names)}")
    record_members(build, names)
    corrections = {} if corrections_path is None else read_corrections(corrections_path, names, functools.cache(functools.partial(_frame_count, videos)))
    stage = Stage(
        "label",
        build / "stages" / "label",
        functools.partial(label_video, build, checkpoints, corrections, device, batch_size, methods=methods),
        resources={"num_gpus": 1} if device.startswith("cuda") else {},
        inputs=functools.partial(label_inputs, build, checkpoints, corrections, methods=methods),
        outputs=(build / "landmarks", build / "variance", *(member_folder(build, name) for name in names)),
    )
    return run_stage(stage, ids, executor, force=force)


def _frame_count(videos: VideoSet, video_id: str) -> int:
    if not videos.video_path(video_id).is_file():
        raise WflwvError(None, f"no video {video_id} in {videos.root / 'videos'}")
    return len(videos.load_boxes(video_id))
