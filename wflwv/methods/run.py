"""A method over a video set, as a prediction set: what `wflwv bench --method` scores beside the models.

Each video's landmarks are written atomically to FOLDER/<ID>.npy with the method.json beside them (its
scheme included), and a video is skipped on a rerun when a digest of what its landmarks depend on (the
method, its options and their files, the video and its boxes) is unchanged; --force redoes them all.
"""

import itertools
import json
import time
from pathlib import Path

import numpy as np
from rich.progress import track

from wflwv import io
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoItem
from wflwv.data.vw300 import open_video_set
from wflwv.errors import WflwvError
from wflwv.methods import FRAMES_PER_CALL, LandmarkMethod, method_label, parse_method
from wflwv.predictions import METHOD_FILE, MethodInfo

KEYS_FILE = "inputs.json"  # video ID -> the digest its landmarks were made from
SECONDS_FILE = "seconds.json"  # video ID -> [frames, seconds the method took on them]


def method_identity(text: str, method: LandmarkMethod) -> dict:
    """What a method's landmarks depend on: its name and options, the digest of each option naming a file, and the method's own `identity` if it has one."""
    name, options = parse_method(text)
    files = {key: io.file_digest(Path(value)) for key, value in options.items() if Path(value).is_file()}
    return {"name": name, "options": options, "files": files, "identity": getattr(method, "identity", None)}


def predict_video(method: LandmarkMethod, item: VideoItem) -> np.ndarray:
    """(frames, N, 2) float64: the method on one video with its boxes, given FRAMES_PER_CALL consecutive frames at a time."""
    boxes, frames, points = item.boxes[:, :4], iter_frames(item.frames_path), []
    while chunk := list(itertools.islice(frames, FRAMES_PER_CALL)):
        start = sum(map(len, points))
        if start + len(chunk) > len(boxes):
            raise WflwvError(item.frames_path, f"video has more frames than its {len(boxes)} boxes")
        points.append(method.predict(np.stack(chunk), boxes[start : start + len(chunk)]).astype(np.float64))
    if sum(map(len, points)) != len(boxes):
        raise WflwvError(item.frames_path, f"video has {sum(map(len, points))} frames, boxes have {len(boxes)}")
    return np.concatenate(points)


def predict_video_set(text: str, method: LandmarkMethod, videos_root: Path, folder: Path, force: bool = False) -> Path:
    """The method loaded from `text` (NAME[:KEY=VALUE,...]) on every video of a WFLW-V or 300-VW folder, with the boxes bench
    crops models from (300-VW's: its truth's tight boxes), as a prediction set in `folder`."""
    videos, identity = open_video_set(videos_root), method_identity(text, method)
    done, seconds = ({}, {}) if force else (read_json(folder / KEYS_FILE), read_json(folder / SECONDS_FILE))
    for video_id in track(videos.ids(), description=f"{method_label(text)}: videos"):
        key = io.digest({"method": identity, "inputs": videos.input_digests(video_id)})
        if done.get(video_id) != key or not (folder / f"{video_id}.npy").is_file():
            start = time.perf_counter()
            points = predict_video(method, videos.load(video_id))
            seconds[video_id] = [len(points), time.perf_counter() - start]
            io.save_npy(folder / f"{video_id}.npy", points)
            done[video_id] = key
            io.save_text(folder / SECONDS_FILE, json.dumps(seconds, indent=2, sort_keys=True) + "\n")
            io.save_text(folder / KEYS_FILE, json.dumps(done, indent=2, sort_keys=True) + "\n")
    timed = [seconds[i] for i in videos.ids() if i in seconds]
    fps = sum(frames for frames, _ in timed) / sum(s for _, s in timed) if len(timed) == len(videos.ids()) and timed else None
    about = MethodInfo(method_label(text), f"wflwv method {text}", parse_method(text)[1], causal=True, scheme=method.scheme, fps=fps)
    io.save_text(folder / METHOD_FILE, json.dumps(about.to_json(), indent=2) + "\n")
    return folder


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
