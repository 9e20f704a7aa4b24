"""Video inference schedules: one frame at a time, equal-length batching, and wflwv's slot scheduler.

The same model runs RwR over the same videos, whose lengths are drawn from the real WFLW-V's
(download_ranges.txt). The timed workload uses random frames, since the schedule is what is
measured; the identity check runs the three schedules on decoded synthetic videos.

Equal-length batching is what the authors' release does when it batches: only videos whose frame
counts are exactly equal share a batch, and they go through in lockstep.

    python -m benchmarks.schedules [--quick] [--device cuda] [--checkpoint CKPT]
"""

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Table, parse, decoded, demo_checkpoint, model_for, options, print_tables, sample_lengths, synthetic_streams, synthetic_world, wflwv_lengths
from wflwv.inference import DEFAULT_SLOTS, VideoPrediction, VideoStream, predict_videos
from wflwv.tuning import best_seconds, synchronize, torch_threads


def predict_equal_length(model: torch.nn.Module, streams: Iterable[VideoStream], *, batch: int = 8, **options) -> Iterator[VideoPrediction]:
    """The release's batching: videos grouped by exact frame count (len(boxes)), each group run in batches of `batch` videos.

    Every batch's videos start and end together, so its slots are never refilled: predict_videos
    over one batch at a time is exactly that schedule. Options are predict_videos's.
    """
    groups = defaultdict(list)
    for stream in streams:
        groups[len(stream.boxes)].append(stream)
    for group in groups.values():
        for start in range(0, len(group), batch):
            chunk = group[start : start + batch]
            yield from predict_videos(model, chunk, slots=len(chunk), **options)


def schedules(batch: int) -> dict[str, Callable[..., Iterator[VideoPrediction]]]:
    """name -> function(model, streams, **options) yielding predictions."""
    return {
        "one frame at a time": lambda model, streams, **o: predict_videos(model, streams, slots=1, **o),
        f"equal-length batches of {batch}": lambda model, streams, **o: predict_equal_length(model, streams, batch=batch, **o),
        f"slot scheduler, {batch} slots": lambda model, streams, **o: predict_videos(model, streams, slots=batch, **o),
    }


def batch_fill(lengths: np.ndarray, batch: int) -> dict[str, float]:
    """Frames over (model calls x batch) for each schedule: how full its batches are, counted without running a model."""
    frames = lengths.sum()
    equal_calls = sum(length * -(-count // batch) for length, count in zip(*np.unique(lengths, return_counts=True)))
    return {"one frame at a time": 1.0, "equal-length": frames / (equal_calls * batch), "slot": frames / (slot_calls(lengths, batch) * batch)}


def slot_calls(lengths: np.ndarray, batch: int) -> int:
    """Model calls of the slot scheduler: each slot takes the next video as soon as its own ends."""
    ends = [0] * batch
    for length in lengths:
        slot = int(np.argmin(ends))
        ends[slot] += int(length)
    return max(ends)


def model_alone(model: torch.nn.Module, batch: int, max_iters: int, device: str, thread_counts: list[int]) -> dict[int, float]:
    """Frames per second of the bare model (warm-started, capped) at batch 1 and at `batch`, each at its best thread count: the most batching can gain."""
    size, fps = model.args.im_size, {}
    for n in (1, batch):
        images = torch.randn(n, 3, size, size, device=device)
        with torch.no_grad():
            z0 = model(images).z_star
            call = lambda: (model(images, z0=z0, max_iters=max_iters), synchronize(device))
            seconds = best_seconds({threads: on_threads(threads, call) for threads in thread_counts}, rounds=5)
        fps[n] = n / min(seconds.values())
    return fps


def on_threads(threads: int, run: Callable[[], object]) -> Callable[[], None]:
    """`run` with torch on `threads` CPU threads, the caller's count restored after."""
    def go():
        with torch_threads(threads):
            run()
    return go


def identity(model: torch.nn.Module, per_split: int, batch: int, **options) -> Table:
    """The three schedules on decoded synthetic videos; each video also cut to the shortest's length, so that equal lengths do occur."""
    videos = synthetic_world(per_split)
    items = [decoded(videos.load(video_id)) for video_id in videos.ids()]
    shortest = min(len(frames) for frames, _ in items)
    clips = [(f"{index}", frames, boxes) for index, (frames, boxes) in enumerate(items)]
    clips += [(f"{index}-cut", frames[:shortest], boxes[:shortest]) for index, (frames, boxes) in enumerate(items)]
    results = {}
    for name, schedule in schedules(batch).items():
        streams = (VideoStream(video_id, iter(frames), boxes) for video_id, frames, boxes in clips)
        results[name] = {p.id: p for p in schedule(model, streams, **options)}
    reference_name, reference = next(iter(results.items()))
    table = Table(f"Identity on {len(clips)} decoded synthetic videos ({sum(len(f) for _, f, _ in clips)} frames), against {reference_name}", ["schedule", "max landmark difference (px)", "iterations identical"])
    for name, predictions in results.items():
        difference = max(np.abs(predictions[i].landmarks - reference[i].landmarks).max() for i in reference)
        same = all(np.array_equal(predictions[i].iterations, reference[i].iterations) for i in reference)
        table.rows.append([name, f"{difference:.2e}", "yes" if same else "no"])
    return table


def run(device: str = "cpu", quick: bool = False, checkpoint: Path | None = None, batch: int = DEFAULT_SLOTS, max_iters: int = 2, thread_counts: list[int] | None = None) -> list[Table]:
    """thread_counts: torch CPU threads to run each schedule at (default 1 and all cores on CPU); each schedule is compared at its fastest."""
    checkpoint = demo_checkpoint(checkpoint)
    model, weights = model_for("ldeq_demo", checkpoint, device)
    n_videos, rounds = (8, 1) if quick else (2 * batch, 1)  # twice the batch: slots are refilled
    lengths = sample_lengths(n_videos)
    streams = synthetic_streams(lengths)
    rwr = {"warm_start": True, "max_iters": max_iters, "device": device}
    if thread_counts is None:
        thread_counts = sorted({1, os.cpu_count() or 1}) if torch.device(device).type == "cpu" else [torch.get_num_threads()]

    def timed(schedule):
        def go():
            for _ in schedule(model, streams(), **rwr):
                pass
            synchronize(device)
        return go

    named = schedules(batch)
    times = best_seconds({(name, threads): on_threads(threads, timed(schedule)) for name, schedule in named.items() for threads in thread_counts}, rounds)
    fps = {key: lengths.sum() / seconds for key, seconds in times.items()}

    def best(schedule: str) -> float:
        return max(value for (name, _), value in fps.items() if name == schedule)

    one, equal, slot = (best(name) for name in named)
    alone = model_alone(model, batch, max_iters, device, thread_counts)
    speed = Table(
        f"Schedules: RwR (cap {max_iters}) over {n_videos} videos, {lengths.sum()} frames, lengths drawn from WFLW-V's",
        ["schedule", "threads", "frames/s", "x one frame at a time", "x equal-length"],
        [[name, threads, value, value / one, value / equal] for (name, threads), value in fps.items()],
        [f"model: {weights}; device {device}; best of {rounds} interleaved rounds; ratios against each schedule's best thread count",
         f"the model alone (no cropping, no scheduling), at its best thread count: {alone[1]:.0f} frames/s at batch 1, {alone[batch]:.0f} at batch {batch} ({alone[batch] / alone[1]:.2f}x: what batching gains the model itself)",
         f"targets: slot >= 1.5x equal-length ({slot / equal:.2f}x), >= 5x one frame at a time ({slot / one:.2f}x)"],
    )
    every = wflwv_lengths()
    fill = Table(
        f"Batch fill (frames / (model calls x {batch})), counted",
        ["videos", "one frame at a time", "equal-length", "slot scheduler"],
        [[f"this run's {n_videos}", *batch_fill(lengths, batch).values()], ["all 1000 of WFLW-V", *batch_fill(every, batch).values()]],
        ["one frame at a time fills its batch of one; equal-length batching leaves the rest of a length's last batch empty"],
    )
    return [speed, fill, identity(model, 1, batch, **rwr)]


def main() -> None:
    parser = options(__doc__.splitlines()[0], checkpoint=True)
    parser.add_argument("--batch", type=int, default=DEFAULT_SLOTS, help="videos per batch: slots of the scheduler, batch of equal-length batching")
    args = parse(parser)
    print_tables(run(args.device, args.quick, args.checkpoint, args.batch, thread_counts=args.threads and [args.threads]))


if __name__ == "__main__":
    main()
