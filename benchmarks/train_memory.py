"""Training memory of LDEQ: implicit differentiation against the unrolled (explicit) mode as iterations grow.

Each (mode, iterations) runs one training step (forward, MSE loss on the landmarks, backward,
Adam step) in a fresh subprocess. Its memory is the peak during the step above a baseline taken in
the same process just before it, after a warm-up step on two samples: peak RSS (VmHWM, the
figure getrusage's ru_maxrss reports, reset through /proc/self/clear_refs just before the baseline) on CPU,
torch.cuda.max_memory_allocated on a GPU. The implicit mode runs every forward iteration (tolerance
0) and as many backward ones; the explicit mode backpropagates through all of them. The step time
is that of a second step in the same process.

    python -m benchmarks.train_memory [--quick] [--device cuda]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import REPO, Table, parse, options, print_tables, synchronize
from wflwv.models import load_config, model_args
from wflwv.models.ldeq import LDEQ

ANDERSON_M = load_config("ldeq_demo")["args"]["anderson_m"]


def step_memory(mode: str, solver: str, iterations: int, batch: int, device: str) -> dict:
    """Run in the subprocess: peak memory (MiB) of one training step above the baseline, and a step's time."""
    torch.manual_seed(0)
    args = vars(model_args(load_config("ldeq_demo"))) | {"model_mode": mode, "solver": solver, "explicit_depth": iterations, "max_iters": iterations, "rel_diff_target": 0.0}
    model = LDEQ(argparse.Namespace(**args)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images, targets = torch.randn(batch, 3, args["im_size"], args["im_size"], device=device), torch.rand(batch, args["n_keypoints"], 2, device=device)

    def step(samples: int = batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(model(images[:samples]).landmarks, targets[:samples]).backward()
        optimizer.step()
        synchronize(device)

    step(samples=2)  # one-time allocations (kernels, thread pools, optimizer state) before the baseline; 2: BatchNorm needs it
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        step()
        peak = torch.cuda.max_memory_allocated() - baseline
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak to the current RSS, or an earlier peak would hide the step's
        baseline = peak_rss_kib()
        step()
        peak = (peak_rss_kib() - baseline) * 1024
    start = time.perf_counter()
    step()
    return {"mib": peak / 2**20, "seconds": time.perf_counter() - start}


def peak_rss_kib() -> int:
    """The process's peak RSS (VmHWM). getrusage's ru_maxrss is the same figure but also keeps the peak of any thread
    that has exited, which clear_refs does not reset, so it can sit above the step's peak."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def in_subprocess(mode: str, solver: str, iterations: int, batch: int, device: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.train_memory", "--child", mode, solver, str(iterations), str(batch), "--device", device, "--threads", str(torch.get_num_threads())]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def run(device: str = "cpu", quick: bool = False) -> list[Table]:
    iterations, batch = ((2, 8, 32), 16) if quick else ((2, 4, 8, 16, 32), 32)
    measure = "peak RSS" if device == "cpu" else "torch.cuda.max_memory_allocated"
    table = Table(
        f"Training memory of one step, ldeq_demo at batch {batch} ({measure} above the baseline, MiB)",
        ["iterations", "implicit fpi MiB", "implicit Anderson MiB", "explicit MiB", "explicit / implicit fpi", "implicit fpi step s", "implicit Anderson step s", "explicit step s"],
    )
    for count in iterations:
        fpi, anderson, explicit = (in_subprocess(mode, solver, count, batch, device) for mode, solver in (("implicit", "fpi"), ("implicit", "anderson"), ("explicit", "fpi")))
        table.rows.append([count, fpi["mib"], anderson["mib"], explicit["mib"], explicit["mib"] / fpi["mib"], fpi["seconds"], anderson["seconds"], explicit["seconds"]])
    first, last = table.rows[0], table.rows[-1]
    past_m = next(row for row in table.rows if row[0] > ANDERSON_M)
    table.notes += [
        f"from {first[0]} to {last[0]} iterations (target: implicit <= +10%): implicit with fixed-point iteration {change(last[1], first[1])}, "
        f"with Anderson {change(last[2], first[2])} ({change(last[2], past_m[2])} from {past_m[0]} on); explicit {last[3] / first[3]:.1f}x for {last[0] / first[0]:.0f}x the iterations",
        f"Anderson keeps the last m = {ANDERSON_M} iterates and residuals ({2 * 2 * batch * ANDERSON_M * 98 * 16 * 16 * 4 / 2**20:.0f} MiB for the forward and backward solves at this batch): "
        f"memory O(m), touched during the first {ANDERSON_M} iterations and constant after; fixed-point iteration keeps one iterate",
        "each configuration in a fresh process; implicit: forward solve without a graph, one tracked evaluation, backward fixed-point solve with the same solver; explicit: unrolled, no solver",
    ]
    return [table]


def change(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.0f}%"


def main() -> None:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("MODE", "SOLVER", "ITERATIONS", "BATCH"), help=argparse.SUPPRESS)
    args = parse(parser)
    if args.child:
        mode, solver, iterations, batch = args.child
        print(json.dumps(step_memory(mode, solver, int(iterations), int(batch), args.device)))
    else:
        print_tables(run(args.device, args.quick))


if __name__ == "__main__":
    main()
