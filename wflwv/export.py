"""wflwv export and verify: the official WFLW-V layout out of a build folder, and the checks of any WFLW-V folder.

The layout: videos/<ID>.mp4, landmarks/<ID>.npy (frames, N, 2) frame pixels (N: 98 WFLW or 68 iBUG, one scheme per set), bboxes/<ID>.npy
(frames, >=4) x1 y1 x2 y2 first, hard_video_IDs.txt and easy_video_IDs.txt; members/<member>/<ID>.npy
when the build has its labelling members' own points (wflwv.members).
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import track

from wflwv import io
from wflwv.data.video import VideoInfo, count_decoded_frames, probe
from wflwv.data.videoset import SPLITS, VideoSet, scheme_problems
from wflwv.errors import WflwvError
from wflwv.members import member_names, member_path
from wflwv.pipeline.stage import Stage, run_stage


def export(build: Path, out: Path, force: bool = False) -> dict[str, int]:
    """Copy the listed videos (hard and easy) of BUILD with their landmarks and boxes into OUT; returns videos per split.

    Every item is checked (shapes, finite values, frame counts) before it is copied; every file is
    copied atomically, the video last. Items are those of the stage `export` (BUILD/stages/export),
    keyed by their source files and OUT: a rerun copies only the videos whose files changed, or one of
    whose files is no longer in OUT.
    """
    source, target, splits = VideoSet(build), VideoSet(out), export_splits(build, out)
    stage = Stage(
        "export", Path(build) / "stages" / "export", functools.partial(export_item, source, target), inputs=functools.partial(export_inputs, source, target),
        outputs=tuple(target.root / folder for folder in ("videos", "landmarks", "bboxes")),
    )
    return run_export(stage, splits, functools.partial(exported_files, source, target), target.write_split, force)


def export_splits(build: Path, out: Path) -> dict[str, list[str]]:
    """The IDs of each split's list (hard, easy) of BUILD, none in both, to export into OUT (not BUILD itself)."""
    if Path(out).resolve() == Path(build).resolve():
        raise WflwvError(out, "the export folder must not be the build folder")
    source = VideoSet(build)
    splits = {split: source.ids(split) for split in SPLITS}
    both = set(splits["hard"]) & set(splits["easy"])
    if both:
        raise WflwvError(source.split_path("easy"), f"{sorted(both)[0]} is listed as hard and as easy")
    return splits


EXPORTED = (VideoSet.landmarks_path, VideoSet.boxes_path, VideoSet.video_path)  # in copying order: the video, which makes the ID visible, last


def exported_files(source: VideoSet, target: VideoSet, video_id: str) -> list[Path]:
    """Every file the export of a video writes into OUT."""
    return [member_path(target.root, name, video_id) for name in member_names(source.root)] + [path_of(target, video_id) for path_of in EXPORTED]


def run_export(stage: Stage, splits: dict[str, list[str]], outputs: Callable[[str], list[Path]], write_split: Callable[[str, list[str]], None], force: bool) -> dict[str, int]:
    """The export stage over every listed video (those whose outputs are gone done again), then the ID lists; videos per split."""
    ids = [video_id for split_ids in splits.values() for video_id in split_ids]
    redo_missing(stage, ids, outputs)
    manifest = run_stage(stage, ids, force=force)
    failed = manifest[manifest["status"] != "done"]
    if len(failed):
        raise WflwvError(None, failed["reason"].iloc[0])
    for split, split_ids in splits.items():
        write_split(split, split_ids)
    return {split: len(split_ids) for split, split_ids in splits.items()}


def redo_missing(stage: Stage, ids: list[str], outputs: Callable[[str], list[Path]]) -> None:
    """Forget the finished rows of the items one of whose outputs is gone (OUT deleted or pruned since), so that they are done again."""
    for video_id in ids:
        if not all(path.is_file() for path in outputs(video_id)):
            stage.row_path(video_id).unlink(missing_ok=True)


def export_item(source: VideoSet, target: VideoSet, video_id: str) -> dict:
    item = source.load(video_id)
    for name in member_names(source.root):  # the members' own points, for leave-one-out scoring (wflwv.members)
        io.copy_file(member_path(source.root, name, video_id), member_path(target.root, name, video_id))
    for path_of in EXPORTED:
        io.copy_file(path_of(source, video_id), path_of(target, video_id))
    return {"frames": item.n_frames}


def export_inputs(source: VideoSet, target: VideoSet, video_id: str) -> dict:
    """The item's three source files by content, and where they go (stage `export` keys each video by them)."""
    members = [member_path(source.root, name, video_id) for name in member_names(source.root)]
    return {"files": [path_of(source, video_id) for path_of in EXPORTED], "members": members, "out": str(target.root.resolve())}


@dataclass
class Verification:
    """What verify found: videos and frames per split, and every problem."""

    root: Path
    videos: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    problems: list[WflwvError] = field(default_factory=list)
    notes: list[WflwvError] = field(default_factory=list)  # what is allowed but worth knowing; not a failure

    def summary(self) -> str:
        splits = ", ".join(f"{split} {self.videos[split]} videos ({self.frames[split]} frames)" for split in self.videos)
        notes = f"; {len(self.notes)} note{'s' * (len(self.notes) != 1)}" * bool(self.notes)
        return f"{self.root}: {splits or 'no ID lists'}; {len(self.problems)} problem{'s' * (len(self.problems) != 1)}{notes}"


def verify(root: Path) -> Verification:
    """Check a WFLW-V folder: both ID lists, and for every listed ID its video, landmarks and boxes.

    Every problem is collected (not just the first), each naming its file. The progress bar goes to
    stderr, so that stdout holds the summary and the problems only.
    """
    videos, result = VideoSet(root), Verification(Path(root))
    listed: dict[str, str] = {}
    for split in SPLITS:
        try:
            ids = videos.ids(split)
        except WflwvError as error:
            result.problems.append(error)
            continue
        result.videos[split], result.frames[split] = len(ids), 0
        for video_id in ids:
            if video_id in listed:
                result.problems.append(WflwvError(videos.split_path(split), f"{video_id} is also listed in {videos.split_path(listed[video_id]).name}"))
            listed.setdefault(video_id, split)
    point_counts = {}
    for video_id, split in track(list(listed.items()), description="verify", transient=True, console=Console(stderr=True)):
        n_frames, problems, point_counts[video_id] = _item_problems(videos, video_id)
        result.frames[split] += n_frames
        result.problems += problems
    result.problems += scheme_problems(videos, {video_id: count for video_id, count in point_counts.items() if count})
    return result


def decoded_probe(path: Path) -> VideoInfo:
    """probe(path), after decoding every frame: damage inside the file is found as bench would find it."""
    count_decoded_frames(path)
    return probe(path)


def _item_problems(videos: VideoSet, video_id: str) -> tuple[int, list[WflwvError], int]:
    """The decoded frame count of a video (0 if unreadable), the problems of its three files and the landmarks'
    point count (0 if unreadable)."""
    loaded, problems = {}, []
    for name, load in (("video", lambda: decoded_probe(videos.video_path(video_id))), ("landmarks", lambda: videos.load_landmarks(video_id)), ("boxes", lambda: videos.load_boxes(video_id))):
        try:
            loaded[name] = load()
        except WflwvError as error:
            problems.append(error)
    if len(loaded) == 3:
        problems += videos.frame_count_problems(video_id, loaded["video"].n_frames, loaded["landmarks"], loaded["boxes"])
    n_points = loaded["landmarks"].shape[1] if "landmarks" in loaded else 0
    return (loaded["video"].n_frames if "video" in loaded else 0), problems, n_points
