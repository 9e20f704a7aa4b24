"""Run every benchmark and write benchmarks/RESULTS.md: the machine, the date and every table.

    python -m benchmarks.run_all [--quick] [--device cuda] [--checkpoint CKPT] [--out benchmarks/RESULTS.md]
"""

import datetime
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks import label_throughput, limit, rwr, schedules, train_memory
from benchmarks.common import REPO, demo_checkpoint, options, parse
from wflwv import io


def machine(device: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    lines = [f"- CPU: {cpu}, {torch.get_num_threads()} torch thread(s) of {os.cpu_count()} cores; {platform.platform()}",
             f"- torch {torch.__version__}, Python {platform.python_version()}, device {device}"]
    if torch.device(device).type == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}")
    return "\n".join(lines)


def main() -> None:
    parser = options(__doc__.splitlines()[0], checkpoint=True)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md", help="where to write the results")
    parser.add_argument("--note", default="", help="a line about the conditions of the run (e.g. that the machine was shared)")
    args = parse(parser)
    checkpoint = demo_checkpoint(args.checkpoint)
    suites = {
        "Video inference schedules": lambda: schedules.run(args.device, args.quick, checkpoint),
        "RwR against cold start": lambda: rwr.run(args.device, args.quick, checkpoint),
        "Training memory": lambda: train_memory.run(args.device, args.quick),
        "Labelling throughput": lambda: label_throughput.run(args.device, args.quick),
        "The limit": lambda: limit.run(args.device, args.quick, checkpoint),
    }
    started, sections = time.perf_counter(), []
    for title, suite in suites.items():
        start = time.perf_counter()
        tables = suite()
        text = "\n".join(table.markdown() for table in tables)
        print(f"## {title}\n\n{text}", flush=True)
        sections.append(f"## {title}\n\n_{time.perf_counter() - start:.0f} s_\n\n{text}")
    header = [
        "# wflwv performance results",
        "",
        f"Written by `make bench-perf` (`python -m benchmarks.run_all{' --quick' if args.quick else ''}`) on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC in {time.perf_counter() - started:.0f} s. See benchmarks/README.md for what each table measures.",
        "",
        machine(args.device),
    ] + ([f"- {args.note}"] if args.note else [])
    io.save_text(args.out, "\n".join(header) + "\n\n" + "\n".join(sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
