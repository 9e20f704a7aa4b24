"""Peak memory of `wflwv predict` on a 10 s and a 60 s 720p video: it must not grow with the length.

Each video is a synthetic-world clip (a talking, moving face), upscaled to 720 pixels high and
pasted, swaying from side to side, on a scrolling background of 1280x720, looped to the length
asked. Each prediction runs in a fresh subprocess (the CLI, with --overlay), and its peak resident
memory is read from os.wait4's rusage of that child.

    python -m benchmarks.predict_memory [--seconds 10,60] [--model CKPT] [--max-side 640] [--work DIR]

Without --model, an untrained LDEQ of the ldeq_demo config narrowed to widths 8/8/2 (the tests'
tiny model) is used, so that the run is short on a CPU: memory does not depend on the weights, and
landmarks are not the point here.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from wflwv.data.video import read_video, write_video
from wflwv.models import LDEQ, load_config, save_checkpoint
from wflwv.synth import PRESETS, generate

WIDTH, HEIGHT, FPS = 1280, 720, 30.0


def clip(work: Path) -> np.ndarray:
    """A short synthetic-world video with an easy face, upscaled to 720x720."""
    generate(work / "world", replace(PRESETS["tiny"], train_stills=0, test_stills=0, videos=1, video_frames=(60, 61)), seed=0, workers=1)
    frames = read_video(work / "world" / "videos" / "videos" / "easy0000.mp4")
    return np.stack([cv2.resize(frame, (HEIGHT, HEIGHT), interpolation=cv2.INTER_LINEAR) for frame in frames])


def frames(face: np.ndarray, seconds: float):
    """`seconds` of 720p frames: the clip played back and forth, swaying over a scrolling background."""
    rng = np.random.default_rng(0)
    background = cv2.resize(rng.integers(0, 256, (HEIGHT // 16, 2 * WIDTH // 16, 3), dtype=np.uint8), (2 * WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    loop = np.concatenate([np.arange(len(face)), np.arange(len(face) - 2, 0, -1)])
    for t in range(round(seconds * FPS)):
        frame = np.roll(background, -4 * t, axis=1)[:, :WIDTH].copy()
        x = round((WIDTH - HEIGHT) / 2 * (1 + 0.6 * np.sin(2 * np.pi * t / (4 * FPS))))
        frame[:, x : x + HEIGHT] = face[loop[t % len(loop)]]
        yield frame


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall time (s) of a fresh subprocess running `command`."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", default="10,60", help="video lengths in seconds, comma-separated")
    parser.add_argument("--model", help="checkpoint to predict with (default: an untrained ldeq_demo)")
    parser.add_argument("--max-side", type=int, default=640, help="MTCNN runs on frames downscaled to this longer side")
    parser.add_argument("--work", type=Path, help="folder for the videos and outputs (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="predict_memory_"))
    model = args.model or str(work / "ldeq_tiny_untrained.pth.tar")
    if args.model is None:
        tiny = {**load_config("ldeq_demo")["args"], "injection_width": 8, "cell_base_width": 8, "cell_width_increment": 2, "cell_softargmax_beta": 0.1}
        save_checkpoint(model, LDEQ(argparse.Namespace(**tiny)))
    face = clip(work)
    results = []
    for seconds in map(float, args.seconds.split(",")):
        video = work / f"video_{seconds:g}s.mp4"
        start = time.perf_counter()
        n_frames = write_video(video, frames(face, seconds), FPS)
        made = time.perf_counter() - start
        command = [sys.executable, "-c", "from wflwv.cli import main; main()", "predict", str(video), "--model", model,
                   "--out", str(work / f"video_{seconds:g}s.parquet"), "--overlay", str(work / f"overlay_{seconds:g}s.mp4"), "--max-side", str(args.max_side)]
        peak, wall = peak_rss_mib(command)
        results.append((seconds, n_frames, peak, wall))
        print(f"{seconds:g} s ({n_frames} frames of {WIDTH}x{HEIGHT}, made in {made:.0f} s): peak RSS {peak:.0f} MiB, predict took {wall:.0f} s ({n_frames / wall:.1f} frames/s)", flush=True)
    if len(results) > 1:
        print(f"peak RSS ratio, {results[-1][0]:g} s / {results[0][0]:g} s: {results[-1][2] / results[0][2]:.3f}")


if __name__ == "__main__":
    main()
