"""Training memory of LDEQ: implicit differentiation against the unrolled (explicit) mode as iterations grow.

Each (mode, iterations) runs one training step (forward, MSE loss on the landmarks, backward,
Adam step) in fresh subprocesses, one for its memory and one for its time, each after a warm-up
step on two samples. Its memory is the peak during the step above a baseline taken just before
it: peak RSS (VmHWM, the figure getrusage's ru_maxrss reports, reset through
/proc/self/clear_refs just before the baseline) on CPU, torch.cuda.max_memory_allocated on a GPU.
In the memory process glibc's mmap threshold is fixed first (wflwv.allocator): by default glibc serves large
tensors from heap arenas after the first few are freed, and their fragmentation, which varies from
run to run, moves RSS by tens of MiB whatever the step keeps alive. The implicit mode runs every
forward iteration (tolerance 0) and as many backward ones, with fixed-point iteration or Anderson;
the explicit mode backpropagates through all of them. The step time is that of a second step on
the whole batch, with the default allocator.

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

from benchmarks.common import REPO, Table, parse, options, print_tables
from wflwv.allocator import fix_mmap_threshold
from wflwv.models import load_config, model_args
from wflwv.models.ldeq import LDEQ
from wflwv.tuning import synchronize

ANDERSON_M = load_config("ldeq_demo")["args"]["anderson_m"]


def measure_step(measure: str, mode: str, solver: str, iterations: int, batch: int, device: str) -> float:
    """Run in the subprocess: one training step's peak memory (MiB) above the baseline, or its time (s)."""
    if measure == "memory" and device == "cpu":
        fix_mmap_threshold()  # before any tensor: every large one is then its own mmap and RSS follows live memory (each also costs page faults: time is measured apart)
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
    if measure == "time":
        step()
        start = time.perf_counter()
        step()
        return time.perf_counter() - start
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - baseline) / 2**20
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak to the current RSS, or an earlier peak would hide the step's
    baseline = peak_rss_kib()
    step()
    return (peak_rss_kib() - baseline) / 1024


def peak_rss_kib() -> int:
    """The process's peak RSS (VmHWM). getrusage's ru_maxrss is the same figure but also keeps the peak of any thread
    that has exited, which clear_refs does not reset, so it can sit above the step's peak."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def in_subprocess(mode: str, solver: str, iterations: int, batch: int, device: str) -> dict:
    """{"mib": peak memory, "seconds": step time} of one configuration, each measured in a fresh process."""
    found = {}
    for measure, key in (("memory", "mib"), ("time", "seconds")):
        command = [sys.executable, "-m", "benchmarks.train_memory", "--child", measure, mode, solver, str(iterations), str(batch), "--device", device, "--threads", str(torch.get_num_threads())]
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
        found[key] = json.loads(result.stdout.splitlines()[-1])
    return found


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
        f"Anderson keeps the last m = {ANDERSON_M} values f(x) and residuals ({2 * batch * ANDERSON_M * 98 * 16 * 16 * 4 / 2**20:.0f} MiB at this batch; the forward and backward solves do not overlap) "
        f"and a cap of k needs k - 1 of them: memory O(min(m, k)), constant from {ANDERSON_M + 1} iterations on; fixed-point iteration keeps one",
        "each configuration in a fresh process; implicit: forward solve without a graph, one tracked evaluation, backward fixed-point solve with the same solver; explicit: unrolled, no solver",
        "memory measured with glibc's mmap threshold fixed (RSS then follows the live tensors), step times in another process with the default allocator",
    ]
    return [table]


def change(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.0f}%"


def main() -> None:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=5, metavar=("MEASURE", "MODE", "SOLVER", "ITERATIONS", "BATCH"), help=argparse.SUPPRESS)
    args = parse(parser)
    if args.child:
        measure, mode, solver, iterations, batch = args.child
        print(json.dumps(measure_step(measure, mode, solver, int(iterations), int(batch), args.device)))
    else:
        print_tables(run(args.device, args.quick))


if __name__ == "__main__":
    main()
