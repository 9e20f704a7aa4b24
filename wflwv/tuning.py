"""Run settings chosen per model and device by a quick measurement: memory layout, batch, torch threads, torch.compile.

Which settings run a model fastest depends on its shape and on the machine. On the 2-core CPU the
demo LDEQ (64x64 crops, 16x16 heatmaps) runs faster with channels-last weights and 3-6x faster in
batches of 32, while at the paper's geometry (256x256 crops, 64x64 heatmaps) channels-last costs
10-20% and batching gains far less (benchmarks/RESULTS.md). So before a long run (`bench`,
`predict`) `choose` times the full video path under each candidate, as a run goes: a short
H.264 clip decoded, its frames cropped and normalised, solved at RwR's cap of iterations from
zero (the cost of a warm-started frame), and the landmarks mapped back, `batch` copies of the clip
through the slot scheduler; the candidates interleaved over rounds and each kept at its best, so
that a load on the machine hits them alike. Timing the bare model instead ranked settings by a
part of the cost: a gain there is diluted, or lost, in the whole path. Every batch is
measured, from the smallest, until one call takes longer than `max_call_s`, and the fastest in
frames/s is kept: frames/s is not monotone in the batch (on the demo LDEQ batch 4 can lose to
batch 2 and batch 32 beat both by 3x), so a search that stops at the first batch that does not
gain picks a small one. A larger batch, channels-last or more threads must be `CLEAR_GAIN` faster
than the simpler settings it replaces: the full `ldeq_paper` gains 1-2% from batch 2 alone, within
the timing's noise, and its full video path then ran 7% slower than one frame at a time.

None of the choices changes a landmark beyond float rounding: the layout and the thread count
only reorder sums, and the solver stops each sample of a batch on its own (where a frame's
residual sits exactly at the solver's tolerance, rounding can flip its stopping test: one iteration
more or less, as between any two machines). Choices are cached per
process by the model's architecture (its class and args: the weights' values do not change its
speed), device, and the candidates.
"""

import collections
import contextlib
import copy
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wflwv.data.video import iter_frames, write_video
from wflwv.inference import VideoStream, predict_frames
from wflwv.models.ldeq import LDEQ

BATCHES = (1, 2, 4, 8, 16, 32, 64)  # the batch sizes tried, in this order, when the caller allows any
COMPILE_GAIN = 1.05  # torch.compile must be this much faster to be kept: it costs a minute or more of compiling
CLEAR_GAIN = 1.03  # a larger batch, channels-last or more threads must be this much faster than simpler settings
# The reader thread overlaps decoding and cropping (about 1 ms a frame at 256x256 crops) with the model. It gained 9-18%
# on the demo LDEQ under RwR (about 1.5 ms a frame at its settings) and cost 4-13% in 5 of 6 rows at the paper's geometry
# (20 ms a frame and more), where it competes with the model for the cores and has little to hide (benchmarks/geometry.py,
# three idle runs).
PREFETCH_BELOW_S = 0.005
CLIP_FRAMES = 4  # frames of the clip each candidate call runs, per slot
CLIP_SIZE = (640, 360)  # width, height: a typical WFLW-V frame


def batches_up_to(streams: int) -> tuple[int, ...]:
    """The batches worth trying for `streams` parallel streams: BATCHES below it, then `streams` itself (the slot scheduler
    never solves more frames at once than there are streams)."""
    return tuple(b for b in BATCHES if b < streams) + (streams,) if streams < BATCHES[-1] else BATCHES


@dataclass(frozen=True)
class RunChoices:
    channels_last: bool
    batch: int  # frames per model call: the slot scheduler's slots
    threads: int  # torch CPU threads
    compiled: bool  # the DEQ's cell through torch.compile
    frames_per_second: float  # of the full video path under these settings, as measured

    @property
    def prefetch(self) -> bool:
        """Whether the next batch is read and cropped in a thread: only where the full path's time per frame is under PREFETCH_BELOW_S."""
        return 1 / self.frames_per_second < PREFETCH_BELOW_S

    def describe(self) -> str:
        layout = "channels-last" if self.channels_last else "contiguous"
        reader = "reader thread" if self.prefetch else "no reader thread"
        return f"{layout} weights, batch {self.batch}, {self.threads} thread(s){', compiled cell' if self.compiled else ''}, {reader}: {self.frames_per_second:.1f} frames/s measured"


@dataclass(frozen=True)
class Candidate:
    channels_last: bool
    batch: int
    threads: int


_CHOSEN: dict[tuple, RunChoices] = {}


def choose(model: torch.nn.Module, device: str | torch.device = "cpu", *, batches: tuple[int, ...] = BATCHES, threads: tuple[int, ...] | None = None,
           cap: int = 2, try_compile: bool = False, max_call_s: float = 1.0, rounds: int = 2) -> RunChoices:
    """The fastest settings of `model` on `device` among the candidates, measured (see the module's docstring).

    batches: the batch sizes allowed, tried in increasing order; threads: the torch thread counts to
    try (default 1 and every core on a CPU, the current count elsewhere); cap: solver iterations per
    call of a DEQ (RwR's cap); try_compile: also time the cell compiled (kept if COMPILE_GAIN faster).
    """
    if threads is None:
        threads = tuple(sorted({1, os.cpu_count() or 1})) if torch.device(device).type == "cpu" else (torch.get_num_threads(),)
    key = (architecture(model), str(device), tuple(batches), tuple(threads), cap, try_compile)
    if key not in _CHOSEN:
        _CHOSEN[key] = _measure(model, device, sorted(batches), threads, cap, try_compile, max_call_s, rounds)
    return _CHOSEN[key]


def architecture(model: torch.nn.Module) -> str:
    """What a model's speed depends on: its class and its args."""
    return json.dumps([type(model).__name__, sorted((k, repr(v)) for k, v in vars(model.args).items())])


def _measure(model: torch.nn.Module, device, batches: list[int], threads: tuple[int, ...], cap: int, try_compile: bool, max_call_s: float, rounds: int) -> RunChoices:
    model.eval()
    layouts = {False: with_layout(copy.deepcopy(model), False), True: with_layout(copy.deepcopy(model), True)}
    measured: dict[Candidate, float] = {}  # frames/s
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "clip.mp4")
        for batch in batches:
            candidates = [Candidate(channels_last, batch, count) for channels_last in layouts for count in threads]
            seconds = best_seconds({candidate: candidate_call(layouts[candidate.channels_last], candidate, device, cap, clip) for candidate in candidates}, rounds)
            measured |= {candidate: batch * CLIP_FRAMES / spent for candidate, spent in seconds.items()}
            if min(seconds.values()) > max_call_s:
                break
        chosen = clearly_fastest(measured)
        fps = measured[chosen]
        compiled = False
        if try_compile and isinstance(model, LDEQ):
            call = candidate_call(compile_cell(layouts[chosen.channels_last]), chosen, device, cap, clip)
            compiled_fps = chosen.batch * CLIP_FRAMES / best_seconds({"compiled": call}, rounds)["compiled"]
            if compiled_fps > COMPILE_GAIN * fps:
                fps, compiled = compiled_fps, True
    return RunChoices(chosen.channels_last, chosen.batch, chosen.threads, compiled, fps)


def clearly_fastest(measured: dict[Candidate, float]) -> Candidate:
    """The fastest candidate (frames/s), where each one, from the simplest (batch 1, contiguous, 1 thread) up, replaces
    the one kept so far only if CLEAR_GAIN faster: within the timing's noise the simpler settings stay."""
    kept = None
    for candidate in sorted(measured, key=lambda c: (c.batch, c.channels_last, c.threads)):
        if kept is None or measured[candidate] > CLEAR_GAIN * measured[kept]:
            kept = candidate
    return kept


def write_clip(path: Path) -> tuple[Path, np.ndarray]:
    """A short H.264 clip of CLIP_SIZE (a bright square drifting over a gradient) and a box per frame around it."""
    width, height = CLIP_SIZE
    rows, columns = np.mgrid[0:height, 0:width]
    left = 200 + 4 * np.arange(CLIP_FRAMES)
    frames = [np.stack([columns * 255 // width, rows * 255 // height, np.full_like(columns, 90)], axis=-1).astype(np.uint8) for _ in left]
    for frame, x in zip(frames, left):
        frame[100:260, x : x + 160] = 220
    write_video(path, frames, fps=30)
    return path, np.stack([left, np.full(CLIP_FRAMES, 100), left + 160, np.full(CLIP_FRAMES, 260)], axis=1).astype(np.float64)


def candidate_call(model: torch.nn.Module, candidate: Candidate, device, cap: int, clip: tuple[Path, np.ndarray]) -> Callable[[], None]:
    """One run of the full video path under a candidate's settings: `batch` copies of the clip through the slot scheduler,
    decoded, cropped, solved (a DEQ from zero at RwR's cap, as costly as a warm-started frame) and mapped back; run once
    here, to warm up."""
    deq = isinstance(model, LDEQ)
    path, boxes = clip

    def call() -> None:
        with torch_threads(candidate.threads):
            streams = [VideoStream(str(slot), iter_frames(path), boxes) for slot in range(candidate.batch)]
            frames = predict_frames(model, streams, slots=candidate.batch, warm_start=False, max_iters=cap if deq else None, device=device,
                                    channels_last=candidate.channels_last, prefetch=False)
            collections.deque(frames, maxlen=0)
            synchronize(device)

    call()
    return call


def best_seconds(calls: dict, rounds: int) -> dict:
    """Best wall time of each call over `rounds` rounds, interleaved."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def apply(model: torch.nn.Module, choices: RunChoices) -> torch.nn.Module:
    """The model in the chosen layout, its cell compiled if chosen (in place); threads are set by `torch_threads`."""
    with_layout(model, choices.channels_last)
    return compile_cell(model) if choices.compiled else model


def with_layout(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def compile_cell(model: LDEQ) -> LDEQ:
    """The cell, which the solver calls again and again, through torch.compile (dynamic shapes: the solver's active rows vary); once."""
    if not isinstance(model.deq_layer.cell, torch._dynamo.eval_frame.OptimizedModule):
        model.deq_layer.cell = torch.compile(model.deq_layer.cell, dynamic=True)
    return model


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch on `threads` CPU threads inside the block (None: as it is), the caller's count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
