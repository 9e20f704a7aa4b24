"""Frame-accurate window cuts: the ffmpeg binary driven by ffmpeg-python (wflwv.scrape.cut) against PyAV
(decode every frame to RGB, re-encode the window with wflwv.data.video.write_video, the earlier path).

Each source frame shows its own index in binary blocks, so a cut is exact when its decoded frames
read back start..end; the pixel error is against the source's own decoded frames.

    python -m benchmarks.cut [--quick]
"""

import contextlib
import itertools
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, Table, best_time, options, parse, print_tables
from wflwv.data.video import iter_frames, read_video, write_video
from wflwv.scrape.cut import encode_window

BITS, BLOCK = 10, 32


def coded_frames(n: int, size: tuple[int, int]):
    """Frame i: i in binary as black or white blocks along the top, a moving ramp below."""
    ramp = np.linspace(0, 255, size[1], dtype=np.float32)
    for i in range(n):
        frame = np.empty((*size, 3), np.uint8)
        frame[:] = ((ramp + 3 * i) % 256).astype(np.uint8)[None, :, None]
        for bit in range(BITS):
            frame[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 * (i >> bit & 1)
        yield frame


def frame_codes(frames: np.ndarray) -> list[int]:
    blocks = frames[:, :BLOCK, : BITS * BLOCK].reshape(len(frames), BLOCK, BITS, BLOCK, 3).mean(axis=(1, 3, 4))
    return [sum(1 << bit for bit in range(BITS) if row[bit] > 128) for row in blocks]


def pyav_cut(source: Path, window: tuple[int, int], fps: float, out: Path) -> None:
    with contextlib.closing(iter_frames(source)) as frames:
        write_video(out, itertools.islice(frames, window[0], window[1] + 1), fps)


def run(quick: bool = False) -> list[Table]:
    folder = REPO / "runs" / "bench" / "cut"
    n_frames, size, fps = (200, (360, 640), 30.0) if quick else (600, (720, 1280), 30.0)
    window = (n_frames - 150, n_frames - 1)  # a WFLW-V-long window at the end: everything before it is decoded too
    source = folder / f"source_{n_frames}_{size[0]}p.mp4"
    if not source.is_file():
        write_video(source, coded_frames(n_frames, size), fps)
    truth = read_video(source)[window[0] : window[1] + 1].astype(np.float32)
    cuts = {"ffmpeg binary via ffmpeg-python (wflwv)": encode_window, "PyAV decode + write_video": pyav_cut}
    times = best_time({name: lambda cut=cut, name=name: cut(source, window, fps, folder / f"{len(name)}.mp4") for name, cut in cuts.items()}, rounds=1 if quick else 3)
    table = Table(f"Cutting frames {window[0]}-{window[1]} of a {size[1]}x{size[0]} H.264 video of {n_frames} frames",
                  ["path", "s", "x PyAV", "frames", "exact frames", "mean abs error vs source"])
    for name in cuts:
        frames = read_video(folder / f"{len(name)}.mp4")
        exact = len(frames) == len(truth) and frame_codes(frames) == list(range(window[0], window[1] + 1))
        error = float(np.abs(frames[:, : size[0], : size[1]].astype(np.float32) - truth).mean()) if len(frames) == len(truth) else float("nan")
        table.rows.append([name, times[name], times["PyAV decode + write_video"] / times[name], len(frames), exact, error])
    table.notes.append(f"best of {1 if quick else 3} interleaved rounds; libx264 crf 23 on both paths; the error is in 8-bit levels")
    return [table]


def main() -> None:
    args = parse(options(__doc__.splitlines()[0]))
    print_tables(run(args.quick))


if __name__ == "__main__":
    main()
