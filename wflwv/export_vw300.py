"""wflwv export --format 300vw and wflwv verify of a 300-VW folder (wflwv.data.vw300 has the layout and its rules).

Export writes the listed videos (hard and easy) of a build or a WFLW-V folder as <ID>/vid.avi (the video stream
remuxed, not re-encoded) and <ID>/annot/<frame>.pts, its landmarks converted to iBUG's 68 points where they
are in another scheme (wflwv.schemes), with the two ID lists.
"""

import functools
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track

from wflwv.data.videoset import VideoSet
from wflwv.data.vw300 import SCHEME, Vw300Set, annotation_files, pts_name, read_annotation
from wflwv.errors import WflwvError
from wflwv.export import Verification, decoded_probe, export_splits, run_export
from wflwv.pipeline.stage import Stage
from wflwv.schemes import convert, scheme_for_points


def export_vw300(build: Path, out: Path, force: bool = False) -> dict[str, int]:
    """Write the listed videos of BUILD into OUT in the 300-VW layout; returns videos per split.

    Items are those of the stage `export_300vw` (BUILD/stages/export_300vw), keyed by their source files and
    OUT: a rerun writes only the videos whose files changed, or whose vid.avi is no longer in OUT."""
    source, target, splits = VideoSet(build), Vw300Set(out), export_splits(build, out)
    ids = [video_id for split_ids in splits.values() for video_id in split_ids]
    stage = Stage(
        "export_300vw", Path(build) / "stages" / "export_300vw", functools.partial(export_item, source, target),
        inputs=functools.partial(export_inputs, source, target), outputs=tuple(folder for i in ids for folder in (target.root / i, target.annot_path(i))),
    )
    return run_export(stage, splits, lambda video_id: [target.video_path(video_id)], target.lists.write_split, force)


def export_item(source: VideoSet, target: Vw300Set, video_id: str) -> dict:
    item = source.load(video_id)
    landmarks = convert(item.landmarks, scheme_for_points(item.landmarks.shape[1]).name, SCHEME.name)
    target.write(video_id, item.frames_path, landmarks)
    return {"frames": item.n_frames, "annotated": int((~np.isnan(landmarks).any(axis=(1, 2))).sum())}


def export_inputs(source: VideoSet, target: Vw300Set, video_id: str) -> dict:
    return {"files": [source.video_path(video_id), source.landmarks_path(video_id), source.boxes_path(video_id)], "out": str(target.root.resolve()), "format": "300vw"}


def verify_vw300(root: Path) -> Verification:
    """Check a 300-VW folder: every video decodes, every .pts file is well formed (header, 68 points, braces, finite
    values, distinct outer eye corners, a 1-based frame number as its name). Problems fail it; a video whose annotations do not match its
    frames one for one is a note (bench scores the frames that have both)."""
    videos, result = Vw300Set(root), Verification(Path(root))
    ids, splits = videos.ids(), videos.splits()
    if not ids:
        result.problems.append(WflwvError(root, "no videos (expected <ID>/vid.avi)"))
    for split, split_ids in splits.items():
        result.videos[split] = len(split_ids)
        result.frames[split] = 0
        for video_id in split_ids:
            if video_id not in ids:
                result.problems.append(WflwvError(videos.root / video_id, f"listed in {split} but has no {videos.video_path(video_id).name}"))
    for video_id in track(ids, description="verify", transient=True, console=Console(stderr=True)):
        n_frames = _check_video(videos, video_id, result)
        for split, split_ids in splits.items():
            result.frames[split] += n_frames * (video_id in split_ids)
    return result


def _check_video(videos: Vw300Set, video_id: str, result: Verification) -> int:
    """Add a video's problems and notes to `result`; returns its decoded frame count (0 if unreadable)."""
    n_frames, files = 0, None
    try:
        n_frames = decoded_probe(videos.video_path(video_id)).n_frames
    except WflwvError as error:
        result.problems.append(error)
    try:
        files = annotation_files(videos.annot_path(video_id))
    except WflwvError as error:
        result.problems.append(error)
    for path in (files or {}).values():
        try:
            read_annotation(path)
        except WflwvError as error:
            result.problems.append(error)
    if not n_frames or files is None:
        return n_frames
    if not any(frame < n_frames for frame in files):
        result.problems.append(WflwvError(videos.annot_path(video_id), f"no annotation for any of the video's {n_frames} frames: nothing to score"))
    else:
        unannotated = sorted(set(range(n_frames)) - set(files))
        beyond = sorted(frame for frame in files if frame >= n_frames)
        if unannotated or beyond:
            result.notes.append(WflwvError(videos.annot_path(video_id), mismatch(n_frames, len(files), unannotated, beyond)))
    return n_frames


def mismatch(n_frames: int, n_files: int, unannotated: list[int], beyond: list[int]) -> str:
    """What a note says of a video whose annotations are not one per frame (frames 1-based, as the files are named)."""
    parts = [f"{n_frames} frames, {n_files} annotations"]
    if unannotated:
        parts.append(f"frames without an annotation: {len(unannotated)} (first: {unannotated[0] + 1}), not scored")
    if beyond:
        parts.append(f"annotations past the last frame: {len(beyond)} (first: {pts_name(beyond[0])}), ignored")
    return "; ".join(parts)
