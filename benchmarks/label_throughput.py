"""Ensemble labelling throughput: member-frames per second and the share of time outside the members' forward passes.

Three decoders are first compared side by side on the same synthetic videos: PyAV with threads
(wflwv.data.video.iter_frames), OpenCV's VideoCapture and a raw-RGB pipe from the ffmpeg binary of
imageio-ffmpeg (the command built by ffmpeg-python). Labelling then runs `label_video` (decode, crop, every member's forward pass,
heatmap averaging, writing) with a stopwatch around each part. label_video is the boundary where
the label stage's own per-video function goes once it is on main: it takes a video, its boxes, the
members and an output folder, and reports its time per part through `watch`.

    python -m benchmarks.label_throughput [--quick] [--device cuda] [--members 4]
"""

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import av
import cv2
import ffmpeg
import imageio_ffmpeg
import numpy as np
import torch

from benchmarks.common import REPO, Table, parse, model_for, options, print_tables, synthetic_world
from wflwv import io
from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, invert_affine, transform_points
from wflwv.data.video import iter_frames, probe
from wflwv.models.heatmaps import soft_argmax
from wflwv.tuning import synchronize


def opencv_frames(path: Path) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def ffmpeg_pipe_frames(path: Path) -> Iterator[np.ndarray]:
    """Raw RGB frames from the ffmpeg binary of imageio-ffmpeg, its command built by ffmpeg-python."""
    info = probe(path)
    stream = ffmpeg.input(str(path)).output("pipe:", format="rawvideo", pix_fmt="rgb24", loglevel="fatal")  # a consumer that stops early breaks the pipe: not an error here
    with stream.run_async(cmd=imageio_ffmpeg.get_ffmpeg_exe(), pipe_stdout=True) as process:
        size = info.width * info.height * 3
        while chunk := process.stdout.read(size):
            yield np.frombuffer(chunk, np.uint8).reshape(info.height, info.width, 3)


def pyav_single_thread_frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


DECODERS: dict[str, Callable[[Path], Iterator[np.ndarray]]] = {
    "PyAV, threads (iter_frames)": iter_frames,
    "PyAV, one thread": pyav_single_thread_frames,
    "OpenCV VideoCapture": opencv_frames,
    "ffmpeg pipe (ffmpeg-python)": ffmpeg_pipe_frames,
}


class Stopwatch:
    """Seconds spent in each named part."""

    def __init__(self, device: str):
        self.seconds, self.device = defaultdict(float), device

    @contextlib.contextmanager
    def __call__(self, part: str):
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.seconds[part] += time.perf_counter() - start

    def timed(self, part: str, items: Iterable) -> Iterator:
        items = iter(items)
        while True:
            with self(part):
                item = next(items, None)
            if item is None:
                return
            yield item


def label_video(frames: Iterable[np.ndarray], boxes: np.ndarray, members: list[torch.nn.Module], out: Path, watch: Stopwatch, batch: int = 16, device: str = "cpu") -> int:
    """Ensemble labels of one video: the members' heatmaps averaged per frame, their soft-argmax in frame pixels
    (out/landmarks.npy) and the members' landmark variance per point (out/variance.npy). Returns the frame count."""
    size = members[0].args.im_size
    landmarks, variances, done = [], [], 0
    frames = watch.timed("decode", frames)
    while chunk := [frame for _, frame in zip(range(batch), frames)]:
        with watch("crop"):
            affines = [box_to_affine(box, size=size) for box in boxes[done : done + len(chunk)]]
            images = crops_to_tensor(np.stack([crop(frame, affine, size) for frame, affine in zip(chunk, affines)])).to(device)
        outputs = []
        for member in members:
            with watch("forward"), torch.inference_mode():
                outputs.append(member(images))
        with watch("average"), torch.inference_mode():
            mean = soft_argmax(torch.stack([output.heatmaps for output in outputs]).mean(dim=0)).cpu().numpy() * size
            variance = torch.stack([output.landmarks * size for output in outputs]).var(dim=0).sum(dim=-1).cpu().numpy()
            landmarks.append(np.stack([transform_points(points, invert_affine(affine)) for points, affine in zip(mean, affines)]))
            variances.append(variance)
        done += len(chunk)
    with watch("write"):
        io.save_npy(out / "landmarks.npy", np.concatenate(landmarks))
        io.save_npy(out / "variance.npy", np.concatenate(variances))
    return done


def run(device: str = "cpu", quick: bool = False, n_members: int = 4, config: str = "ldeq_demo") -> list[Table]:
    videos = synthetic_world(1)
    items = [videos.load(video_id) for video_id in videos.ids()]
    n_frames = sum(item.n_frames for item in items)

    decoding = Table(f"Decoders on {len(items)} synthetic 256x256 H.264 videos ({n_frames} frames)", ["decoder", "frames/s", "x PyAV threads", "frames"])
    for name, decoder in DECODERS.items():
        start = time.perf_counter()
        counted = sum(1 for item in items for _ in decoder(item.frames_path))
        decoding.rows.append([name, counted / (time.perf_counter() - start), 0.0, counted])
    for row in decoding.rows:
        row[2] = row[1] / decoding.rows[0][1]

    members = [model_for(config, None, device, seed=seed)[0] for seed in range(n_members)]
    watch = Stopwatch(device)
    out = REPO / "runs" / "bench" / "labels"
    for item in items:
        label_video(iter_frames(item.frames_path), item.boxes, members, out / item.id, watch, device=device)
    total = sum(watch.seconds.values())
    outside = 1 - watch.seconds["forward"] / total
    labelling = Table(
        f"Labelling with {n_members} members ({config}, random weights, cold start), {n_frames} frames",
        ["part", "seconds", "share"],
        [[part, seconds, f"{100 * seconds / total:.1f}%"] for part, seconds in watch.seconds.items()],
        [f"{n_members * n_frames / total:.0f} member-frames/s; {100 * outside:.1f}% of the time outside the forward passes (target <= 25%); device {device}"],
    )
    return [decoding, labelling]


def main() -> None:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4, help="ensemble members")
    parser.add_argument("--config", default="ldeq_demo", help="members' model config")
    args = parse(parser)
    print_tables(run(args.device, args.quick, args.members, args.config))


if __name__ == "__main__":
    main()
