"""Generating the synthetic world: still datasets in the WFLW layout and videos in the WFLW-V layout, with
WFLW's 98 points (videos/) and, for the same videos, iBUG's 68 (videos68/).

Every item (a still or a video) draws its randomness from (seed, item kind, index) alone and its
person from (seed, item kind, person index), so the world is the same whatever the number of
workers and however often it was interrupted. Each item's files are written atomically and the
manifest (out/manifest.parquet) lists the finished ones: a rerun renders only what is missing.
"""

import concurrent.futures
import functools
import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from wflwv import io
from wflwv.data.videoset import VideoSet, check_landmarks
from wflwv.data.wflw import IMAGES_DIR, Face, WflwStills, write_annotations, write_image
from wflwv.errors import WflwvError
from wflwv.synth.backdrop import paint_background
from wflwv.synth.face import Identity
from wflwv.synth.sampling import attributes, sample_identity, sample_look, sample_still
from wflwv.synth.scene import face_box, render, texels_per_unit
from wflwv.synth.texture import Look
from wflwv.synth.videos import CAUSES, Clip, Footage, plan_clip, shoot

KINDS = {"train": 0, "test": 1, "hard": 2, "easy": 3}  # still splits, then video splits
STILL_KINDS, VIDEO_KINDS = ("train", "test"), ("hard", "easy")
PERSON = 1_000_003  # marks a person's random stream apart from its photos'
FLUSH_SECONDS = 5.0  # how often the manifest is saved while rendering
STILLS_PER_TASK = 30
VIDEOS68 = "videos68"  # the same videos with iBUG's 68-point truth


@dataclass(frozen=True)
class Preset:
    """How big the world is. Faces are sized by their face box side, in pixels."""

    train_stills: int
    test_stills: int
    videos: int  # per split: this many hard and as many easy
    still_side: tuple[int, int]  # square still images, side drawn in this range
    still_face: tuple[float, float]
    video_size: tuple[int, int]  # width, height
    video_face: tuple[float, float]
    video_frames: tuple[int, int] = (120, 151)
    fps: float = 30.0
    photos_per_person: int = 4  # consecutive stills of a split show the same person, in the same room

    @property
    def key(self) -> str:
        """A short digest of every field: items made under another preset are not reused."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def count(self, kind: str) -> int:
        return {"train": self.train_stills, "test": self.test_stills}.get(kind, self.videos)


PRESETS = {
    "tiny": Preset(30, 24, 2, (160, 192), (90, 120), (256, 256), (100, 140), (120, 151)),
    "demo": Preset(3000, 600, 12, (160, 192), (90, 120), (256, 256), (100, 140)),
    # The demo world with four times its videos, for claims (docs/study.md, "Held-out worlds"): one hard video of 48
    # moves a split's mean a quarter as much as one of 12.
    "heldout": Preset(3000, 600, 48, (160, 192), (90, 120), (256, 256), (100, 140)),
    "full": Preset(7500, 2500, 100, (256, 320), (140, 190), (640, 480), (160, 240)),
}


def item_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, KINDS[kind], index])


@functools.lru_cache(maxsize=4)
def person(seed: int, kind: str, number: int, room_side: int) -> tuple[Identity, Look, np.ndarray]:
    """Person `number` of a split (stills i with i // photos_per_person == number): identity, look,
    and the room they are photographed in (a background larger than the photos)."""
    rng = item_rng(seed, kind, PERSON + number)
    return sample_identity(rng), sample_look(rng), paint_background(rng, room_side, room_side)


def still_name(kind: str, index: int) -> str:
    """The image path relative to WFLW_images/."""
    return f"{kind}/{kind}_{index:05d}.jpg"


def video_id(kind: str, index: int) -> str:
    return f"{kind}{index:04d}"


def render_still(out: Path, preset: Preset, seed: int, kind: str, index: int) -> dict:
    """Render, compress and write one still; returns its manifest row."""
    rng = item_rng(seed, kind, index)
    side = int(rng.integers(preset.still_side[0], preset.still_side[1] + 1))
    identity, look, room = person(seed, kind, index // preset.photos_per_person, int(1.25 * preset.still_side[1]))
    scene = sample_still(rng, side, preset.still_face, identity, look)
    corner = rng.integers(0, len(room) - side + 1, 2)
    shot = render(scene, room[corner[0] : corner[0] + side, corner[1] : corner[1] + side], rng, texels_per_unit(preset.still_face[1]))
    quality = int(rng.integers(40, 96))
    jpeg = cv2.imencode(".jpg", shot.image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]  # the compression the photo went through
    name = still_name(kind, index)
    write_image(out / "stills" / IMAGES_DIR / name, cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED))
    return {
        "kind": kind,
        "index": index,
        "path": f"stills/{IMAGES_DIR}/{name}",
        "landmarks": shot.landmarks.ravel().tolist(),
        "box": face_box(shot.landmarks).tolist(),
        "attributes": attributes(scene, shot).tolist(),
        "covered": int(shot.covered.sum()),
        "jpeg_quality": quality,
    }


def plan_video(preset: Preset, seed: int, kind: str, index: int) -> tuple[Clip, np.random.Generator]:
    """The plan of one video, and the random stream that goes on to render it."""
    rng = item_rng(seed, kind, index)
    n_frames = int(rng.integers(preset.video_frames[0], preset.video_frames[1] + 1))
    return plan_clip(rng, kind == "hard", n_frames, preset.video_size, preset.video_face, preset.fps), rng


def render_video(out: Path, preset: Preset, seed: int, kind: str, index: int) -> dict:
    """Plan, render, encode and write one video; returns its manifest row."""
    clip, rng = plan_video(preset, seed, kind, index)
    n_frames = len(clip.scenes)
    footage = shoot(clip, rng, texels_per_unit(preset.video_face[1]))
    name = video_id(kind, index)
    VideoSet(out / "videos").write(name, footage.frames, footage.landmarks, footage.boxes, preset.fps)
    write_ibug68(out, name, footage)
    return {
        "kind": kind,
        "index": index,
        "path": f"videos/videos/{name}.mp4",
        "id": name,
        "frames": n_frames,
        "challenges": " ".join(clip.challenges),
        "ambiguous": float(footage.ambiguous["any"].mean()),
        **{cause: float(footage.ambiguous[cause].mean()) for cause in CAUSES},
    }


def _render_stills(out: Path, preset: Preset, seed: int, kind: str, indices: list[int]) -> list[dict]:
    return [render_still(out, preset, seed, kind, index) for index in indices]


def _render_video(out: Path, preset: Preset, seed: int, kind: str, index: int) -> list[dict]:
    return [render_video(out, preset, seed, kind, index)]


def _single_threaded_opencv() -> None:
    cv2.setNumThreads(1)  # the workers are the parallelism


def resolve_preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise WflwvError(None, f"unknown preset {preset!r}, expected one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def load_manifest(out: Path, preset: Preset, seed: int) -> pd.DataFrame:
    """The rows of finished items made with this preset and seed whose files are still there."""
    path = out / "manifest.parquet"
    if not path.is_file():
        return pd.DataFrame()
    try:
        manifest = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise WflwvError(path, f"not a readable parquet manifest ({error}); delete it or pass force") from None
    if not {"preset", "seed", "kind", "index", "path"} <= set(manifest.columns):
        raise WflwvError(path, "is not a synthetic world manifest (missing preset, seed, kind, index or path)")
    same = (manifest["preset"] == preset.key) & (manifest["seed"] == seed)
    present = np.array([(out / p).is_file() for p in manifest["path"]], dtype=bool)
    return manifest[same & present].reset_index(drop=True)


def generate(out: Path, preset: str | Preset = "demo", seed: int = 0, workers: int = 2, force: bool = False) -> dict:
    """Render the world into `out` (stills/ and videos/) and return a summary of what it holds.

    With `force`, every item is rendered again; otherwise finished items are kept.
    """
    out, preset = Path(out), resolve_preset(preset)
    if out.exists() and not out.is_dir():
        raise WflwvError(out, "exists and is not a folder")
    if seed < 0:
        raise WflwvError(None, f"seed must be 0 or more, got {seed}")
    if workers < 1:
        raise WflwvError(None, f"workers must be 1 or more, got {workers}")
    out.mkdir(parents=True, exist_ok=True)
    io.remove_partials(out, recursive=True)  # what a killed run was writing
    started = time.perf_counter()
    rows = [] if force else load_manifest(out, preset, seed).to_dict("records")
    done = {(row["kind"], row["index"]) for row in rows}
    tasks = [(_render_video, (kind, index), 1) for kind in VIDEO_KINDS for index in range(preset.videos) if (kind, index) not in done]
    for kind in STILL_KINDS:  # batches of whole persons, so that a worker paints each face once
        todo = [index for index in range(preset.count(kind)) if (kind, index) not in done]
        batch = STILLS_PER_TASK // preset.photos_per_person * preset.photos_per_person or preset.photos_per_person
        tasks += [(_render_stills, (kind, todo[i : i + batch]), len(todo[i : i + batch])) for i in range(0, len(todo), batch)]
    rendered = _run(tasks, out, preset, seed, workers, rows)
    _write_datasets(out, preset, pd.DataFrame(rows))
    return {
        "stills": {kind: preset.count(kind) for kind in STILL_KINDS},
        "videos": {kind: preset.videos for kind in VIDEO_KINDS},
        "rendered": rendered,
        "reused": len(done),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _run(tasks: list[tuple[Callable, tuple, int]], out: Path, preset: Preset, seed: int, workers: int, rows: list[dict]) -> int:
    """Run the tasks, adding their rows to `rows` and saving the manifest now and then; returns the items rendered."""
    columns = [TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TextColumn("items"), TimeElapsedColumn()]
    rendered, last_flush = 0, time.perf_counter()
    with Progress(*columns, transient=False) as progress:
        bar = progress.add_task("synth", total=sum(size for _, _, size in tasks))
        for new_rows in _results(tasks, out, preset, seed, workers):
            for row in new_rows:
                rows.append({**row, "preset": preset.key, "seed": seed})
            rendered += len(new_rows)
            progress.advance(bar, len(new_rows))
            if time.perf_counter() - last_flush > FLUSH_SECONDS:
                _save_manifest(out, rows)
                last_flush = time.perf_counter()
    _save_manifest(out, rows)
    return rendered


def _results(tasks: list[tuple[Callable, tuple, int]], out: Path, preset: Preset, seed: int, workers: int) -> Iterable[list[dict]]:
    if workers == 1:
        for function, arguments, _ in tasks:
            yield function(out, preset, seed, *arguments)
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded_opencv) as pool:
        futures = [pool.submit(function, out, preset, seed, *arguments) for function, arguments, _ in tasks]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def _save_manifest(out: Path, rows: list[dict]) -> None:
    manifest = pd.DataFrame(rows)
    if len(manifest):
        manifest = manifest.sort_values(["kind", "index"], key=lambda column: column.map(KINDS) if column.name == "kind" else column)
    io.save_parquet(out / "manifest.parquet", manifest)


def write_ibug68(out: Path, name: str, footage: Footage) -> None:
    """The video again in videos68/ with iBUG's 68-point truth of the same faces: a 68-point video set beside the 98."""
    videos, videos68 = VideoSet(out / "videos"), VideoSet(out / VIDEOS68)
    io.save_npy(videos68.landmarks_path(name), check_landmarks(videos68.landmarks_path(name), footage.landmarks68))
    io.save_npy(videos68.boxes_path(name), footage.boxes)
    io.copy_file(videos.video_path(name), videos68.video_path(name), link=True)  # last: it makes the ID visible


def _write_datasets(out: Path, preset: Preset, manifest: pd.DataFrame) -> None:
    """The annotation files of the stills, the split lists and difficulty table of the videos."""
    stills = WflwStills(out / "stills")
    for kind in STILL_KINDS:
        rows = manifest[manifest["kind"] == kind].sort_values("index") if len(manifest) else manifest
        faces = [Face(np.reshape(row.landmarks, (-1, 2)), row.box, row.attributes, still_name(kind, row.index)) for row in rows.itertuples()]
        write_annotations(stills.annotation_path(kind), faces)
    videos, videos68 = VideoSet(out / "videos"), VideoSet(out / VIDEOS68)
    table = []
    for kind in VIDEO_KINDS:
        rows = manifest[manifest["kind"] == kind].sort_values("index") if len(manifest) else manifest
        videos.write_split(kind, list(rows["id"]) if len(rows) else [])
        videos68.write_split(kind, list(rows["id"]) if len(rows) else [])
        table += [{"id": row.id, "split": kind, "frames": int(row.frames), "ambiguous": row.ambiguous, **{cause: getattr(row, cause) for cause in CAUSES}, "challenges": row.challenges} for row in rows.itertuples()]
    io.save_parquet(out / "videos" / "difficulty.parquet", pd.DataFrame(table))
