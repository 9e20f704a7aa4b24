"""The limit: multiply-adds per frame under RwR, the machine's multiply-add rate, and the share of it wflwv's inference reaches.

Multiply-adds are counted by wflwv.models.forward_cost (torch's FlopCounterMode: the stem once
per frame, one cell evaluation per solver iteration; Anderson's mixing is left out, it is under 1%
of a cell). The machine's rate is the better of a large float32 matrix multiply and a
wide 3x3 convolution through torch (on AMD processors MKL's sgemm reaches about half of oneDNN's
convolutions).
Inference is predict_videos running RwR (cap 2) on decoded synthetic videos; its rate counts the
iterations each frame actually took. Then the variants: each is applied from outside
predict_videos (a copy of the model, or a context around the run), timed against the baseline in
the same run, and its landmarks compared with the baseline's as NME (inter-ocular distance of the
ground truth). On a GPU, bf16 autocast and CUDA graphs (torch.compile's "reduce-overhead" mode)
join, and a table gives the paper's full-size LDEQ in frames per second on 256x256 crops.

    python -m benchmarks.limit [--quick] [--device cuda] [--checkpoint CKPT] [--no-compile]
"""

import contextlib
import copy
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Table, parse, decoded, demo_checkpoint, model_for, options, print_tables, synthetic_world
from wflwv.inference import VideoStream, predict_videos
from wflwv.metrics import normaliser
from wflwv.models import forward_cost, load_config
from wflwv.tuning import best_seconds, synchronize, torch_threads

MAX_NME_CHANGE = 0.1  # percent: a variant that moves the landmarks more is not kept


@dataclass(frozen=True)
class Variant:
    prepare: Callable[[torch.nn.Module], torch.nn.Module] = lambda model: model
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    threads: int | None = None
    channels_last: bool = False  # predict_videos's default


def compiled(mode: str | None = None) -> Callable[[torch.nn.Module], torch.nn.Module]:
    """torch.compile the cell, the part the solver calls again and again (active rows vary, so shapes are dynamic)."""
    def prepare(model: torch.nn.Module) -> torch.nn.Module:
        model.deq_layer.cell = torch.compile(model.deq_layer.cell, mode=mode, dynamic=mode != "reduce-overhead")
        return model
    return prepare


def variants(device: str, with_compile: bool) -> dict[str, Variant]:
    kind = torch.device(device).type
    found = {
        f"baseline (inference mode, contiguous weights{f', {torch.get_num_threads()} thread(s)' if kind == 'cpu' else ''})": Variant(),
        "channels-last weights": Variant(channels_last=True),
        "bf16 autocast": Variant(context=lambda: torch.autocast(kind, dtype=torch.bfloat16)),
    }
    if kind == "cpu":
        others = sorted({1, os.cpu_count()} - {torch.get_num_threads()})
        found |= {f"{threads} thread{'s' * (threads > 1)}": Variant(threads=threads) for threads in others}
    if with_compile:
        found["torch.compile (cell)"] = Variant(prepare=compiled())
        if kind == "cuda":
            found["CUDA graphs (compile reduce-overhead)"] = Variant(prepare=compiled("reduce-overhead"))
    return found


def matmul_rate(device: str, n: int, repeats: int = 30) -> float:
    """Multiply-adds per second of an n x n float32 matrix product, best of `repeats` (short products, so one can miss the noise)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return n**3 / best_of(lambda: a @ b, device, repeats)


def conv_rate(device: str, width: int, side: int, repeats: int = 10) -> float:
    """Multiply-adds per second of a width -> width 3x3 float32 convolution on a side x side map (the cell's widest layer's shape)."""
    conv = torch.nn.Conv2d(width, width, 3, padding=1, device=device)
    x = torch.randn(2, width, side, side, device=device)
    with torch.no_grad():
        return 2 * width * width * 9 * side * side / best_of(lambda: conv(x), device, repeats)


def best_of(operation: Callable[[], object], device: str, repeats: int) -> float:
    return best_seconds({"operation": lambda: (operation(), synchronize(device))}, repeats)["operation"]


def machine_rate(device: str) -> tuple[float, str]:
    """The machine's float32 multiply-add rate through torch, and a line saying how it was measured."""
    side = 1024 if torch.device(device).type == "cpu" else 8192
    args = load_config("ldeq_paper")["args"]
    rates = {"matmul": matmul_rate(device, side), "conv": conv_rate(device, args["cell_base_width"], args["heatmap_size"])}
    peak = max(rates.values())  # MKL's sgemm takes a slow path on AMD processors, oneDNN's convolutions do not
    return peak, (f"the machine's rate: {peak / 1e9:.1f} GMAC/s, the better of a {side}^2 float32 sgemm ({rates['matmul'] / 1e9:.1f}) and a {args['cell_base_width']}-wide 3x3 convolution on "
                  f"{args['heatmap_size']}x{args['heatmap_size']} maps ({rates['conv'] / 1e9:.1f}) through torch, {torch.get_num_threads()} threads, device {device}")


def rwr_run(model, clips, variant: Variant, device: str, slots: int, cap: int, first_cap: int | None = None) -> tuple[float, dict]:
    """(seconds, predictions by id) of RwR over the clips under a variant."""
    with torch_threads(variant.threads), variant.context():
        start = time.perf_counter()
        streams = (VideoStream(video_id, iter(frames), boxes) for video_id, frames, boxes, _ in clips)
        found = {p.id: p for p in predict_videos(model, streams, slots=slots, max_iters=cap, first_frame_max_iters=first_cap, device=device, channels_last=variant.channels_last)}
        synchronize(device)
        return time.perf_counter() - start, found


def nme_change(found: dict, reference: dict, clips) -> float:
    """Mean NME (percent, inter-ocular distance of the ground truth) between two runs' landmarks."""
    errors = [np.linalg.norm(found[i].landmarks - reference[i].landmarks, axis=-1).mean(axis=-1) / normaliser(truth) for i, _, _, truth in clips]
    return 100 * float(np.mean(np.concatenate(errors)))


def world_clips(per_split: int, n_frames: int) -> list:
    """(id, frames, boxes, landmarks) of decoded synthetic videos, cut to n_frames."""
    videos = synthetic_world(per_split)
    clips = []
    for video_id in videos.ids():
        item = videos.load(video_id)
        frames, boxes = decoded(item)
        clips.append((video_id, frames[:n_frames], boxes[:n_frames], item.landmarks[:n_frames]))
    return clips


def variant_table(title: str, model, clips, named: dict[str, Variant], device: str, slots: int, cap: int, rounds: int, cell_macs: float, stem_macs: float) -> Table:
    """Each variant against the baseline (the first): frames/s, speed-up, multiply-adds per second, NME change; runs interleaved over rounds."""
    models = {name: variant.prepare(copy.deepcopy(model)) for name, variant in named.items()}
    warm_clip = [(i, f[:3], b[:3], t[:3]) for i, f, b, t in clips]  # batches of every size the run will see
    for name, variant in named.items():  # compilation and first-call costs out of the timings
        rwr_run(models[name], warm_clip, variant, device, slots, cap)
    best, found = dict.fromkeys(named, float("inf")), {}
    for _ in range(rounds):
        for name, variant in named.items():
            seconds, found[name] = rwr_run(models[name], clips, variant, device, slots, cap)
            best[name] = min(best[name], seconds)
    n_frames = sum(len(frames) for _, frames, _, _ in clips)
    baseline_name = next(iter(named))
    table = Table(title, ["variant", "frames/s", "x baseline", "GMAC/s", "NME change (%)", "> 5% faster, NME within 0.1%"])
    for name in named:
        iterations = sum(int(p.iterations.sum()) for p in found[name].values())
        rate = (n_frames * stem_macs + iterations * cell_macs) / best[name]
        change = nme_change(found[name], found[baseline_name], clips)
        speedup = best[baseline_name] / best[name]
        table.rows.append([name, n_frames / best[name], speedup, rate / 1e9, f"{change:.4f}", "-" if name == baseline_name else ("yes" if speedup > 1.05 and change <= MAX_NME_CHANGE else "no")])
    return table


def run(device: str = "cpu", quick: bool = False, checkpoint: Path | None = None, with_compile: bool = True, slots: int = 8, cap: int = 2) -> list[Table]:
    model, weights = model_for("ldeq_demo", demo_checkpoint(checkpoint), device)
    peak, rate_line = machine_rate(device)
    paper, _ = model_for("ldeq_paper", None, device)
    counts = {"ldeq_paper": forward_cost(paper, paper.args.im_size), "ldeq_demo": forward_cost(model, model.args.im_size)}
    clips = world_clips(1, 16 if quick else 24)
    rounds = 1 if quick else 2
    named = variants(device, with_compile)
    tables = [variant_table(f"Inference variants, ldeq_demo, RwR cap {cap}, {slots} slots, {sum(len(c[1]) for c in clips)} decoded frames", model, clips, named, device, slots, cap, rounds, counts["ldeq_demo"][1], counts["ldeq_demo"][0])]
    tables[0].notes += [f"model: {weights}; device {device}; best of {rounds} interleaved rounds after a warm-up; the last column says whether a variant passes the bar for the library, in this run (see benchmarks/README.md for what was kept)"]
    print(tables[0].markdown(), file=sys.stderr, flush=True)  # as soon as measured: the compiled variants can run long

    paper_clips = [(i, f[: 3 if device == "cpu" else 60], b[: 3 if device == "cpu" else 60], t[: 3 if device == "cpu" else 60]) for i, f, b, t in clips]
    rwr_run(paper, paper_clips, Variant(), device, slots=len(paper_clips), cap=cap, first_cap=cap)  # first calls set up oneDNN's kernels
    seconds, found = rwr_run(paper, paper_clips, Variant(), device, slots=len(paper_clips), cap=cap, first_cap=cap)
    paper_iterations = sum(int(p.iterations.sum()) for p in found.values())
    paper_frames = sum(len(c[1]) for c in paper_clips)
    demo_rate = float(tables[0].rows[0][3]) * 1e9

    limit = Table(
        "Multiply-adds and the share of the machine's multiply-add rate reached",
        ["model", "cell eval GMAC", "stem GMAC", f"frame under RwR cap {cap} GMAC", "inference GMAC/s", "share of the machine's rate"],
        [
            ["ldeq_paper (256x256, 64x64 heatmaps)", counts["ldeq_paper"][1] / 1e9, counts["ldeq_paper"][0] / 1e9, (counts["ldeq_paper"][0] + cap * counts["ldeq_paper"][1]) / 1e9,
             (paper_frames * counts["ldeq_paper"][0] + paper_iterations * counts["ldeq_paper"][1]) / seconds / 1e9, f"{100 * (paper_frames * counts['ldeq_paper'][0] + paper_iterations * counts['ldeq_paper'][1]) / seconds / peak:.1f}%"],
            ["ldeq_demo (64x64, 16x16 heatmaps)", counts["ldeq_demo"][1] / 1e9, counts["ldeq_demo"][0] / 1e9, (counts["ldeq_demo"][0] + cap * counts["ldeq_demo"][1]) / 1e9, demo_rate / 1e9, f"{100 * demo_rate / peak:.1f}%"],
        ],
        [rate_line,
         f"ldeq_paper: random weights, {paper_frames} frames at batch {len(paper_clips)}, every frame capped at {cap}; ldeq_demo: the baseline row above"],
    )
    tables.append(limit)
    if torch.device(device).type == "cuda":
        tables.append(gpu_table(device, clips, with_compile, cap, counts["ldeq_paper"]))
    return tables


def gpu_table(device: str, clips, with_compile: bool, cap: int, paper_macs: tuple[float, float]) -> Table:
    """The paper's full-size LDEQ with RwR on 256x256 crops on the GPU: baseline, bf16 autocast, CUDA graphs."""
    paper, _ = model_for("ldeq_paper", None, device)
    named = {name: variant for name, variant in variants(device, with_compile).items() if name.startswith("baseline") or name in ("channels-last weights", "bf16 autocast", "CUDA graphs (compile reduce-overhead)")}
    streams = [(f"{video_id}-{copy_index}", frames, boxes, truth) for copy_index in range(16) for video_id, frames, boxes, truth in clips]  # enough videos to fill the slots
    table = variant_table(f"GPU: {torch.cuda.get_device_name(device)}, ldeq_paper (16.5M parameters, 256x256 crops), RwR cap {cap}, 32 slots", paper, streams, named, device, 32, cap, 2, paper_macs[1], paper_macs[0])
    table.notes.append(f"torch {torch.__version__}, CUDA {torch.version.cuda}, random weights; {platform.node()}")
    return table


def main() -> None:
    parser = options(__doc__.splitlines()[0], checkpoint=True)
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for a minute or more on CPU)")
    args = parse(parser)
    print_tables(run(args.device, args.quick, args.checkpoint, not args.no_compile))


if __name__ == "__main__":
    main()
