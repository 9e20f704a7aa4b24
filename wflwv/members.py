"""Fair labels: each ensemble member's own points, the labels without one member, and how far they move.

`wflwv label` writes every member's points beside the labels, as BUILD/members/<member>/<ID>.npy
(frames, N, 2) frame pixels in the labels' scheme, NaN on the frames a correction drops the member
from. The labels are the mean of the kept members' points (label.py: averaging the heatmaps and
averaging the points agree), so the labels without member m are the mean of the others' points.

A method that is a member is scored against the labels without it (leave-one-out): labels it helped
make would reward it for agreeing with itself. How far the labels move when one member is dropped is
the labels' own uncertainty: `label_shift` is the NME (same normalisation) of each leave-one-out
label set against the full labels, averaged over the members.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np

from wflwv import io
from wflwv.data.videoset import VideoItem, load_array, validate_id
from wflwv.metrics import padded, score_videos

FOLDER = "members"
NAMES_FILE = "names.json"


def member_folder(root: Path, member: str) -> Path:
    return Path(root) / FOLDER / member


def member_path(root: Path, member: str, video_id: str) -> Path:
    return member_folder(root, member) / f"{validate_id(video_id)}.npy"


def save_member_points(root: Path, names: list[str], video_id: str, points: np.ndarray) -> None:
    """points (members, frames, N, 2) of one video, NaN on the frames a member is dropped from."""
    for name, member_points in zip(names, points):
        io.save_npy(member_path(root, name, video_id), member_points.astype(np.float32))


def record_members(root: Path, names: list[str]) -> None:
    """The current ensemble's member names (NAMES_FILE): the folders of earlier ensembles' members stay out."""
    io.save_text(Path(root) / FOLDER / NAMES_FILE, json.dumps(sorted(names)) + "\n")


def member_names(root: Path) -> list[str]:
    """The members recorded by `wflwv label` (an exported set: its member folders, which export copies for those alone)."""
    folder = Path(root) / FOLDER
    if (folder / NAMES_FILE).is_file():
        return json.loads((folder / NAMES_FILE).read_text())
    return sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []


def load_member_points(root: Path, video_ids: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """member -> video ID -> (frames, N, 2), for the members that have points for every one of the videos."""
    found = {}
    for name in member_names(root):
        paths = {video_id: member_path(root, name, video_id) for video_id in video_ids}
        if all(path.is_file() for path in paths.values()):
            found[name] = {video_id: load_array(path, "member points").astype(np.float64) for video_id, path in paths.items()}
    return found


def leave_one_out(points: dict[str, dict[str, np.ndarray]], dropped: str) -> dict[str, np.ndarray]:
    """The labels without member `dropped`: per video, the mean of the other members' points (NaN where none is kept)."""
    others = [by_video for name, by_video in points.items() if name != dropped]
    with np.errstate(invalid="ignore"):
        return {video_id: _nanmean(np.stack([by_video[video_id] for by_video in others])) for video_id in others[0]}


def _nanmean(stack: np.ndarray) -> np.ndarray:
    counts = np.isfinite(stack).sum(axis=0)
    return np.where(counts > 0, np.nansum(stack, axis=0) / np.maximum(counts, 1), np.nan)


def fair_items(items: dict[str, VideoItem], points: dict[str, dict[str, np.ndarray]], name: str) -> dict[str, VideoItem]:
    """The videos with the labels a method called `name` is fairly scored against: without it when it is one of two or
    more members, else the items themselves."""
    if name not in points or len(points) < 2:
        return items
    labels = leave_one_out(points, name)
    return {video_id: dataclasses.replace(item, landmarks=labels[video_id]) for video_id, item in items.items()}


def label_shift(points: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], ids: list[str], norm: str) -> float:
    """NME (x100) of the labels without each member against the full labels on the videos `ids`, averaged over the members:
    how far the labels move when one member is dropped. NaN with fewer than two members."""
    if len(points) < 2:
        return float("nan")
    truth = padded([labels[i] for i in ids])
    return float(np.mean([100 * score_videos(padded([leave_one_out(points, name)[i] for i in ids]), truth, norm=norm).nme for name in points]))
