"""LDEQ on video: Recurrence without Recurrence, with frames of many videos batched by a slot scheduler.

RwR solves frame n from z0 = z* of frame n-1 of the same video under a hard cap on solver
iterations. The first frame of a video has no predecessor: it starts from zero and gets
`first_frame_max_iters` (by default the config's full max_iters). The authors' release capped every
frame, the first included: protocol="released" does the same, with the release's crop and solver
conventions too (docs/protocol.md). Cold start solves every frame from zero with cap max_iters.

The scheduler keeps `slots` videos in flight, one per slot. Each step takes the next frame of every
occupied slot and solves them as one batch, each from its own slot's z0 and with its own cap; a
slot whose video has ended is handed the next video, with its state reset to zero. The solver stops
each sample on its own, so a frame's result does not depend on its batch-mates and slots=1, one
frame at a time, is the reference the batched schedule reproduces. Frames (and boxes, which may be
an iterator too) are pulled lazily: `predict_frames` yields each frame's landmarks as it is solved,
so its memory does not grow with a video's length; `predict_videos` gathers them per video.

A model that is not a DEQ (no z0, no solver) goes through the same scheduler with warm_start=False:
plain per-frame prediction, recorded as 0 solver iterations and a NaN residual.
"""

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, invert_affine, released_box_to_affine, transform_points
from wflwv.data.prefetch import prefetched
from wflwv.errors import WflwvError
from wflwv.models.ldeq import LDEQ, PROTOCOLS

# Video streams solved as one batch unless the caller says otherwise (`wflwv bench` measures the
# fastest per model: wflwv.tuning). On the 2-core CPU the demo LDEQ alone runs 5.6-5.9x more frames
# per second at batch 32 than at batch 1 on both cores (3.3-3.8x on one), and 1.2-1.9x more than at
# batch 8 (benchmarks/schedules.py); at the paper's geometry batching gains far less
# (benchmarks/geometry.py). A z state per slot is small (3 MiB for 32 slots of the demo model, 50 MiB
# of the paper's).
DEFAULT_SLOTS = 32
CROPS = {"wflwv": box_to_affine, "released": released_box_to_affine}  # each protocol's box -> crop affine


@dataclass(frozen=True)
class VideoStream:
    id: str
    frames: Iterable[np.ndarray]  # RGB uint8 (H, W, 3), may be a lazy iterator
    boxes: np.ndarray | Iterable[np.ndarray]  # (T, >= 4), x1 y1 x2 y2 first; or one (>= 4,) box per frame, may be lazy


@dataclass(frozen=True)
class VideoPrediction:
    id: str
    landmarks: np.ndarray  # (T, 98, 2) frame pixels
    iterations: np.ndarray  # (T,) solver iterations per frame
    residuals: np.ndarray  # (T,) final solver residual per frame


@dataclass(frozen=True)
class FramePrediction:
    index: int  # the frame's index in its video
    landmarks: np.ndarray  # (98, 2) frame pixels
    iterations: int  # solver iterations
    residual: float  # final solver residual


@dataclass
class _Track:
    """A video in a slot: its frames and boxes still to come, and the index of its current frame."""

    number: int  # the stream's position in the input
    stream: VideoStream
    frames: Iterator[np.ndarray]
    boxes: Iterator[np.ndarray]
    n_boxes: int | None  # None when the boxes are an iterator
    frame_index: int = -1
    box: np.ndarray | None = None

    @classmethod
    def open(cls, number: int, stream: VideoStream) -> "_Track":
        if not isinstance(stream.boxes, np.ndarray):
            return cls(number, stream, iter(stream.frames), iter(stream.boxes), None)
        if stream.boxes.ndim != 2 or stream.boxes.shape[1] < 4:
            raise WflwvError(stream.id, f"boxes have shape {stream.boxes.shape}, expected (frames, >=4)")
        return cls(number, stream, iter(stream.frames), iter(stream.boxes), len(stream.boxes))

    def next_frame(self) -> np.ndarray | None:
        """The next frame, or None at the end of the video (checked against the number of boxes)."""
        frame, box = next(self.frames, None), next(self.boxes, None)
        count, boxes_text = self.frame_index + 1, "boxes" if self.n_boxes is None else f"{self.n_boxes} boxes"
        if frame is None:
            if count == 0 or box is not None:
                raise WflwvError(self.stream.id, f"video has {count} frames but {'more ' if self.n_boxes is None else ''}{boxes_text}")
            return None
        if box is None:
            raise WflwvError(self.stream.id, f"video has more frames than its {boxes_text}")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise WflwvError(self.stream.id, f"frame {count} is {frame.dtype} {frame.shape}, expected RGB uint8 (height, width, 3)")
        self.frame_index, self.box = count, np.asarray(box)
        return frame

    def affine(self, size: int, protocol: str) -> np.ndarray:
        try:
            if self.box.shape[0] < 4:
                raise ValueError(f"box has {self.box.shape[0]} numbers, expected at least 4")
            return CROPS[protocol](self.box, size=size)
        except ValueError as error:
            raise WflwvError(self.stream.id, f"frame {self.frame_index}: {error}") from None


def predict_videos(model: torch.nn.Module, streams: Iterable[VideoStream], **options) -> Iterator[VideoPrediction]:
    """Landmarks of every video, yielded as each one finishes (so not necessarily in input order);
    options are those of predict_frames."""
    ids: dict[int, str] = {}
    frames: dict[int, list[FramePrediction]] = {}
    for number, frame in predict_frames(model, _numbered(streams, ids), **options):
        if frame is not None:
            frames.setdefault(number, []).append(frame)
            continue
        done = frames.pop(number)
        yield VideoPrediction(
            ids.pop(number),
            np.stack([f.landmarks for f in done]),
            np.array([f.iterations for f in done], dtype=np.int64),
            np.array([f.residual for f in done]),
        )


def _numbered(streams: Iterable[VideoStream], ids: dict[int, str]) -> Iterator[VideoStream]:
    for number, stream in enumerate(streams):
        ids[number] = stream.id
        yield stream


def predict_frames(
    model: torch.nn.Module,
    streams: Iterable[VideoStream],
    *,
    slots: int = DEFAULT_SLOTS,
    warm_start: bool = True,
    max_iters: int | None = None,
    first_frame_max_iters: int | None = None,
    protocol: str = "wflwv",
    tol: float | None = None,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    prefetch: bool = True,
) -> Iterator[tuple[int, FramePrediction | None]]:
    """(stream number, landmarks of its next frame) as each frame is solved, and (stream number, None)
    when that stream has ended; a stream's number is its position in `streams`.

    warm_start: RwR (z0 = previous z*) or cold start (z0 = 0 on every frame). max_iters caps the
    solver on every frame but a warm-started video's first, which gets first_frame_max_iters; None
    means the config's max_iters. protocol "released" evaluates as the authors' release does: its
    crop, its solver conventions, and the RwR cap on the first frame too (first_frame_max_iters must
    then be None; a checkpoint's take_one_less_inference_step holds in cold start only, as in the
    release's evaluation script). tol, when given, replaces the config's solver tolerance on every
    frame, in both protocols: with max_iters=2 it is the paper's adaptive rule, one iteration where the
    residual from the previous frame's z* is already below tol (consecutive frames almost identical),
    two elsewhere (under the released protocol each followed by the release's extra evaluation).
    The model is put in eval mode and must already be on `device`;
    its convolution weights are put in the memory layout asked for (channels-last or contiguous),
    in place, and the crops are made in the same (which is faster depends on the model and the
    machine: wflwv.tuning measures it; the landmarks are equal to float rounding). With prefetch a
    background thread reads, crops and normalises the next batch while the model solves this one.
    """
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}, expected one of {PROTOCOLS}")
    if protocol == "released" and first_frame_max_iters is not None:
        raise ValueError("the released protocol caps the first frame as every other: leave first_frame_max_iters None")
    deq = is_deq(model)
    if warm_start and not deq:
        raise ValueError(f"{type(model).__name__} is not a DEQ: it has no state to warm-start from, use warm_start=False")
    model.eval().to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    args = model.args
    cap = args.max_iters if deq and max_iters is None else max_iters
    first_cap = (args.max_iters if first_frame_max_iters is None else first_frame_max_iters) if warm_start and protocol == "wflwv" else cap
    states = torch.zeros(slots, args.z_width, args.heatmap_size, args.heatmap_size, device=device) if warm_start else torch.zeros(slots, 0)
    batches = _batches(streams, slots, args.im_size, (first_cap, cap), channels_last, protocol)
    for batch in prefetched(batches) if prefetch else batches:
        yield from batch.finished
        if not batch.slots:
            return
        points, solver_iterations, residuals, states = _solve(model, batch.images.to(device), states, batch.opened, batch.slots, batch.caps, warm_start, deq, protocol, tol)
        for number, index, affine, crop_points, iterations, residual in zip(batch.numbers, batch.indices, batch.affines, points * args.im_size, solver_iterations, residuals):
            yield number, FramePrediction(index, transform_points(crop_points, invert_affine(affine)), iterations, residual)


@dataclass(frozen=True)
class _Batch:
    """The next frame of every occupied slot, cropped, with what the results need: a snapshot, so that it can be made ahead."""

    finished: list[tuple[int, None]]  # streams that ended since the last batch
    opened: list[int]  # slots handed a new video since the last batch: their state starts from zero
    slots: list[int]  # the occupied slots, in batch order; empty once every stream has ended
    numbers: list[int]  # each frame's stream number
    indices: list[int]  # each frame's index in its video
    affines: list[np.ndarray]  # frame pixels -> crop pixels
    caps: list[int]
    images: torch.Tensor | None


def _batches(streams: Iterable[VideoStream], slots: int, size: int, caps: tuple[int, int], channels_last: bool, protocol: str) -> Iterator[_Batch]:
    """The scheduler's batches, each frame's cap the first of `caps` on a video's first frame and the second after."""
    pending = enumerate(streams)
    tracks: list[_Track | None] = [None] * slots
    while True:
        frames, finished, opened = _next_frames(tracks, pending)
        if not frames:
            yield _Batch(finished, opened, [], [], [], [], [], None)
            return
        occupied = list(frames)
        affines = [tracks[slot].affine(size, protocol) for slot in occupied]
        crops = np.stack([crop(frames[slot], affine, size) for slot, affine in zip(occupied, affines)])
        yield _Batch(finished, opened, occupied, [tracks[slot].number for slot in occupied], [tracks[slot].frame_index for slot in occupied], affines,
                     [caps[tracks[slot].frame_index > 0] for slot in occupied], crops_to_tensor(crops, channels_last))


@torch.inference_mode()  # scoped to the solve: a generator's `with` would leave it on in the caller between yields
def _solve(model: torch.nn.Module, images: torch.Tensor, states: torch.Tensor, opened: list[int], occupied: list[int], caps: list[int], warm_start: bool, deq: bool, protocol: str,
           tol: float | None) -> tuple[np.ndarray, list[int], list[float], torch.Tensor]:
    """Landmarks in crop units (float), solver iterations and residuals of one batch, and the states (the opened slots' reset to zero
    first) with the occupied slots' updated under RwR."""
    if not deq:
        return model(images).landmarks.float().cpu().numpy(), [0] * len(occupied), [float("nan")] * len(occupied), states
    states[opened] = 0
    index = torch.tensor(occupied, device=images.device)
    every = len(occupied) == len(states)  # then in slot order: the states themselves, no gathered copy to fault in
    # the release's RwR script sets take_one_less_inference_step to its own rwr_take_one_less_inference_step, False by default
    take_one_less = False if warm_start and protocol == "released" else None
    z0 = (states if every else states[index]) if warm_start else None
    output = model(images, z0=z0, max_iters=torch.tensor(caps, device=images.device), protocol=protocol, tol=tol, take_one_less=take_one_less)
    if warm_start and every:
        states = output.z_star.to(states.dtype)  # a fresh tensor: taken as it is (bf16 autocast aside), not copied into the old one
    elif warm_start:
        states[index] = output.z_star
    return output.landmarks.float().cpu().numpy(), output.iterations.tolist(), output.residual.tolist(), states  # float: bf16 under autocast


def is_deq(model: torch.nn.Module) -> bool:
    """Whether the model solves for a fixed point (takes z0 and max_iters, reports its iterations)."""
    return isinstance(model, LDEQ)


def _next_frames(tracks: list[_Track | None], pending: Iterator[tuple[int, VideoStream]]) -> tuple[dict[int, np.ndarray], list[tuple[int, None]], list[int]]:
    """The next frame of every slot that has one (refilling ended slots from `pending`), the videos that ended, and the slots refilled."""
    frames, finished, opened = {}, [], []
    for slot in range(len(tracks)):
        while slot not in frames:
            if tracks[slot] is None:
                numbered = next(pending, None)
                if numbered is None:
                    break
                tracks[slot] = _Track.open(*numbered)
                opened.append(slot)
            frame = tracks[slot].next_frame()
            if frame is None:
                finished.append((tracks[slot].number, None))
                tracks[slot] = None
            else:
                frames[slot] = frame
    return frames, finished, opened
