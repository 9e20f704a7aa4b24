"""The geometry sweep: the full video path (decode, crop, solve, map back) at the demo's and the paper's geometry.

Three models: the demo LDEQ (64x64 crops, 16x16 heatmaps), an LDEQ of the paper's geometry (256x256
crops, 64x64 heatmaps) at small widths, saved and loaded as a checkpoint in the authors' released
format, and the paper's full LDEQ (`ldeq_paper`) on a few frames. Each runs over the same synthetic
H.264 videos, decoded from their files as `wflwv bench` does, cut to a few lengths so that
equal-length batching finds equal lengths, under:

- one frame at a time (`predict_videos(slots=1)`), equal-length batching (the authors' release's
  batches) and the slot scheduler;
- contiguous and channels-last weights and crops;
- the reader thread (prefetch) off and on;
- cold start (z0 = 0, the config's solve) and RwR (cap 2).

The batch and the "fastest settings" row are wflwv.tuning's choice for the model on this machine
(layout, batch, threads, and the reader thread, on only for a model under 5 ms a frame), what `wflwv bench` runs. Every row gives frames/s, its
ratio to one frame at a time with contiguous weights and no prefetch (the authors' way of running),
and its multiply-adds per second as a share of the machine's rate (benchmarks/limit.py). A second
table times the parts of the path apart (decoders, crop paths, normalisation, mapping back) per
frame against the model's own time per frame.

    python -m benchmarks.geometry [--quick] [--device cuda] [--threads N]
"""

import copy
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REPO, Table, demo_checkpoint, model_for, options, parse, print_tables, synthetic_world
from benchmarks.label_throughput import DECODERS
from benchmarks.limit import machine_rate
from benchmarks.schedules import predict_equal_length
from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, invert_affine, transform_points
from wflwv.data.video import iter_frames
from wflwv.inference import VideoStream, predict_videos
from wflwv.models import create_model, forward_cost, load_checkpoint, load_config, save_checkpoint
from wflwv.tuning import Candidate, RunChoices, apply, best_seconds, choose, synchronize, torch_threads

SMALL_WIDTHS = {"injection_width": 32, "cell_base_width": 32, "cell_width_increment": 8}  # the demo's widths
# Random weights at the paper's beta (0.4), and still at 0.1, give a cell without a fixed point to converge to (the
# residual stays at 0.01-0.02 after 20 iterations): rounding differences between layouts and batches then grow along
# RwR's chain of frames to pixels. At 0.05 the random cell converges as a trained one does (about 7 iterations cold,
# 1-2 warm), so that the identity column compares layouts, not chaos; beta costs no multiply-add.
CONTRACTIVE = {"cell_softargmax_beta": 0.05}
RWR_CAP = 2


@dataclass(frozen=True)
class Setting:
    schedule: str  # "one frame at a time", "equal-length" or "slot scheduler"
    channels_last: bool
    prefetch: bool
    batch: int
    threads: int


def paper_geometry_small(device: str) -> tuple[torch.nn.Module, str]:
    """The paper's geometry at the demo's widths, random weights, written once in the released format and loaded from it."""
    path = REPO / "runs" / "bench" / f"ldeq_paper_small_beta{CONTRACTIVE['cell_softargmax_beta']}.pth.tar"
    if not path.is_file():
        config = load_config("ldeq_paper")
        config["args"] |= SMALL_WIDTHS | CONTRACTIVE
        torch.manual_seed(0)
        save_checkpoint(path, create_model(config))
    model, _ = load_checkpoint(path, map_location=device)
    return model.eval(), f"ldeq_paper's geometry at widths {'/'.join(str(v) for v in SMALL_WIDTHS.values())}, random weights made contractive (soft-argmax beta {CONTRACTIVE['cell_softargmax_beta']}), released-format checkpoint {path.relative_to(REPO)}"


def clips(n_videos: int, length: int) -> list[tuple[str, Path, np.ndarray, int]]:
    """(id, video file, boxes, frames) of synthetic videos cut to length, 3/4 and 1/2 of it in turn (pairs of equal lengths)."""
    videos = synthetic_world(4)  # the 8 videos benchmarks/rwr.py renders
    cuts = itertools.cycle([length, length, length * 3 // 4, length * 3 // 4, length // 2, length // 2])
    return [(video_id, videos.video_path(video_id), videos.load_boxes(video_id)[:cut], cut) for video_id, cut in zip(videos.ids()[:n_videos], cuts)]


def path_run(model: torch.nn.Module, videos: list, setting: Setting, rwr: bool, device: str) -> Callable[[], dict]:
    """The full path over the videos under a setting: predictions by id."""
    def run() -> dict:
        streams = [VideoStream(video_id, itertools.islice(iter_frames(path), n), boxes) for video_id, path, boxes, n in videos]
        solve = {"warm_start": rwr, "max_iters": RWR_CAP if rwr else None, "device": device, "channels_last": setting.channels_last, "prefetch": setting.prefetch}
        with torch_threads(setting.threads):
            if setting.schedule == "equal-length":
                found = predict_equal_length(model, streams, batch=setting.batch, **solve)
            else:
                found = predict_videos(model, streams, slots=setting.batch, **solve)
            found = {p.id: p for p in found}
            synchronize(device)
        return found
    return run


def settings_for(choices: RunChoices, threads: int, rwr: bool, full_size: bool) -> dict[str, Setting]:
    """The rows of one mode: the baseline first, the fastest settings last."""
    rows = {"one frame at a time, contiguous": Setting("one frame at a time", False, False, 1, threads),
            "one frame at a time, channels-last": Setting("one frame at a time", True, False, 1, threads)}
    for layout, channels_last in (("contiguous", False), ("channels-last", True)):
        if rwr and not full_size:
            rows[f"equal-length, {choices.batch} videos, {layout}"] = Setting("equal-length", channels_last, True, choices.batch, threads)
        rows[f"slot scheduler, {choices.batch} slots, {layout}"] = Setting("slot scheduler", channels_last, True, choices.batch, threads)
    if not full_size:
        rows[f"fastest settings, reader thread {'off' if choices.prefetch else 'on'}"] = Setting("slot scheduler", choices.channels_last, not choices.prefetch, choices.batch, choices.threads)
    rows["fastest settings (wflwv bench's)"] = Setting("slot scheduler", choices.channels_last, choices.prefetch, choices.batch, choices.threads)
    return rows


def sweep_table(name: str, model: torch.nn.Module, weights: str, videos: list, device: str, peak: float, rounds: int = 1, full_size: bool = False) -> Table:
    threads = torch.get_num_threads()
    choices = choose(model, device, cap=RWR_CAP, **({"batches": (1, 2, 4), "threads": (threads,)} if full_size else {}))
    per_image, per_iteration = forward_cost(model, model.args.im_size)
    n_frames = sum(n for *_, n in videos)
    table = Table(f"Full video path, {name}: {len(videos)} videos, {n_frames} frames", ["mode", "setting", "frames/s", "x one frame at a time", "solver iters/frame", "GMAC/s", "share of the machine's rate", "max landmark difference (px)"])
    for rwr in (True,) if full_size else (False, True):  # the full-size model's cold start would take minutes
        named = settings_for(choices, threads, rwr, full_size)
        runs = {key: path_run(model, videos, setting, rwr, device) for key, setting in named.items()}
        found: dict[str, dict] = {}
        seconds = best_seconds({key: _keeping(found, key, run) for key, run in runs.items()}, rounds)
        baseline = next(iter(named))
        for key in named:
            iterations = sum(int(p.iterations.sum()) for p in found[key].values())
            rate = (n_frames * per_image + iterations * per_iteration) / seconds[key]
            difference = max(float(np.abs(found[key][i].landmarks - found[baseline][i].landmarks).max()) for i in found[baseline])
            table.rows.append(["RwR cap 2" if rwr else "cold start", key, n_frames / seconds[key], seconds[baseline] / seconds[key], iterations / n_frames, rate / 1e9, f"{100 * rate / peak:.1f}%", f"{difference:.1e}"])
    alone = model_alone_gain(model, choices, device)
    table.notes += [f"model: {weights}; device {device}; {threads} torch thread(s) but in the fastest settings; best of {rounds} interleaved round(s)",
                    f"fastest settings, measured by wflwv.tuning for this model: {choices.describe()}",
                    f"the model alone (RwR cap {RWR_CAP}, no decoding or cropping) runs {alone:.2f}x faster per frame at the chosen settings than at batch 1, contiguous, {threads} thread(s): what any schedule can gain over one frame at a time",
                    f"multiply-adds: {per_image / 1e9:.3g} GMAC per frame (stem) + {per_iteration / 1e9:.3g} per solver iteration (wflwv.models.forward_cost); machine rate {peak / 1e9:.1f} GMAC/s"]
    return table


def _keeping(found: dict, key: str, run: Callable[[], dict]) -> Callable[[], None]:
    def go() -> None:
        found[key] = run()
    return go


def model_call(model: torch.nn.Module, candidate: Candidate, device: str, cap: int) -> Callable[[], None]:
    """One call of the bare model under a candidate's settings on a batch of random crops, warm-started from its own
    solution when it is a DEQ; run once here, to warm up."""
    size = model.args.im_size
    images = torch.randn(candidate.batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last if candidate.channels_last else torch.contiguous_format)
    deq = hasattr(model, "deq_layer")

    @torch.inference_mode()
    def call() -> None:
        with torch_threads(candidate.threads):
            model(images, z0=z0, max_iters=cap) if deq else model(images)
            synchronize(device)

    with torch.inference_mode(), torch_threads(candidate.threads):
        z0 = model(images, max_iters=cap).z_star if deq else None
    call()
    return call


def model_alone_gain(model: torch.nn.Module, choices: RunChoices, device: str) -> float:
    """Frames/s of the bare model at the chosen settings over frames/s at batch 1, contiguous, the current threads."""
    threads = torch.get_num_threads()
    chosen, single = Candidate(choices.channels_last, choices.batch, choices.threads), Candidate(False, 1, threads)
    calls = {candidate: model_call(apply(copy.deepcopy(model), RunChoices(candidate.channels_last, 1, candidate.threads, False, 0.0)), candidate, device, RWR_CAP) for candidate in {chosen, single}}
    seconds = best_seconds(calls, rounds=3)
    return (chosen.batch / seconds[chosen]) / (1 / seconds[single])


def parts_table(model: torch.nn.Module, videos: list, device: str, rounds: int = 3) -> Table:
    """Per frame: each decoder, each crop path, normalisation in each layout and mapping back, against the model's own time (RwR cap 2)."""
    size = model.args.im_size
    frames = [frame for _, path, _, n in videos[:2] for frame in itertools.islice(iter_frames(path), n)]
    boxes = np.concatenate([boxes for _, _, boxes, _ in videos[:2]])
    affines = [box_to_affine(box, size=size) for box in boxes]
    crops = np.stack([crop(frame, affine, size) for frame, affine in zip(frames, affines)])
    points = np.random.default_rng(0).uniform(0, size, (len(frames), 98, 2))
    parts = {f"decode: {name}": (lambda decoder=decoder: [sum(1 for _ in itertools.islice(decoder(path), n)) for _, path, _, n in videos[:2]]) for name, decoder in DECODERS.items()}
    parts |= {
        "crop: cv2.warpAffine": lambda: [crop(frame, affine, size) for frame, affine in zip(frames, affines)],
        "crop: torch grid_sample": lambda: torch_crops(frames, affines, size),
        "normalise: contiguous": lambda: crops_to_tensor(crops),
        "normalise: channels-last": lambda: crops_to_tensor(crops, channels_last=True),
        "map back to frame pixels": lambda: [transform_points(p, invert_affine(a)) for p, a in zip(points, affines)],
    }
    seconds = best_seconds(parts, rounds)
    images = crops_to_tensor(crops[:1]).to(device)
    with torch.inference_mode():
        z0 = model(images).z_star
        model_seconds = best_seconds({"model": lambda: (model(images, z0=z0, max_iters=RWR_CAP), synchronize(device))}, rounds)["model"]
    table = Table(f"Parts of the path per frame at {size}x{size} crops ({len(frames)} frames of 256x256 videos)", ["part", "ms per frame", "share of the model's time"])
    table.rows = [[part, 1000 * s / len(frames), f"{100 * s / len(frames) / model_seconds:.1f}%"] for part, s in seconds.items()]
    fastest = [min((s for part, s in seconds.items() if part.startswith(kind)), default=0.0) / len(frames) for kind in ("decode", "crop", "normalise", "map")]
    table.notes += [f"the model alone: {1000 * model_seconds:.1f} ms per frame (batch 1, contiguous, RwR cap {RWR_CAP}); "
                    f"the fastest of each part together: {1000 * sum(fastest):.2f} ms, {100 * sum(fastest) / model_seconds:.1f}% of it (target <= 10%)"]
    return table


def torch_crops(frames: list[np.ndarray], affines: list[np.ndarray], size: int) -> torch.Tensor:
    """The crops through torch (affine_grid + grid_sample, bilinear, zeros outside), the alternative to cv2.warpAffine."""
    out = []
    for frame, affine in zip(frames, affines):
        image = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
        height, width = frame.shape[:2]
        to_frame = invert_affine(affine)  # crop pixels -> frame pixels, then to grid_sample's [-1, 1]
        normalise = np.array([[2 / width, 0, 1 / width - 1], [0, 2 / height, 1 / height - 1], [0, 0, 1]])
        from_unit = np.array([[size / 2, 0, size / 2 - 0.5], [0, size / 2, size / 2 - 0.5], [0, 0, 1]])
        theta = (normalise @ np.vstack([to_frame, [0, 0, 1]]) @ from_unit)[:2]
        grid = torch.nn.functional.affine_grid(torch.tensor(theta, dtype=torch.float32)[None], [1, 3, size, size], align_corners=False)
        out.append(torch.nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    return torch.cat(out)


def run(device: str = "cpu", quick: bool = False, checkpoint: Path | None = None) -> list[Table]:
    """The paper's geometry first, then the demo's; each table is also printed to stderr as soon as it is measured."""
    peak, _ = machine_rate(device)
    small, small_weights = paper_geometry_small(device)
    demo, demo_weights = model_for("ldeq_demo", demo_checkpoint(checkpoint), device)
    paper, paper_weights = model_for("ldeq_paper", None, device, args=CONTRACTIVE)
    measures = [
        lambda: sweep_table("paper geometry, small widths (256x256 crops, 64x64 heatmaps)", small, small_weights, clips(8, 8 if quick else 18), device, peak),
        lambda: parts_table(small, clips(2, 16), device),
        lambda: sweep_table("demo geometry (ldeq_demo, 64x64 crops, 16x16 heatmaps)", demo, demo_weights, clips(4 if quick else 8, 16 if quick else 48), device, peak),
        lambda: sweep_table("ldeq_paper (256x256 crops, 64x64 heatmaps, widths 224/224/24)", paper, paper_weights, clips(2 if quick else 4, 2 if quick else 3), device, peak, full_size=True),
    ]
    tables = []
    for measure in measures:
        tables.append(measure())
        print(tables[-1].markdown(), file=sys.stderr, flush=True)
    return tables


def main() -> None:
    parser = options(__doc__.splitlines()[0], checkpoint=True)
    args = parse(parser)
    print_tables(run(args.device, args.quick, args.checkpoint))


if __name__ == "__main__":
    main()
