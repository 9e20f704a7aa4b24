"""Run every benchmark and write benchmarks/RESULTS.md: the machine, the date and every table.

    python -m benchmarks.run_all [--quick] [--device cuda] [--checkpoint CKPT] [--out benchmarks/RESULTS.md] [--only geometry]
"""

import datetime
import importlib
import os
import platform
import time
from pathlib import Path

import torch

from benchmarks.common import REPO, demo_checkpoint, options, parse
from wflwv import io

SUITES = {"schedules": "Video inference schedules", "rwr": "RwR against cold start", "train_memory": "Training memory",
          "label_throughput": "Labelling throughput", "limit": "The limit",
          "geometry": "Geometry sweep: the full video path at the demo's and the paper's geometry",
          "authors": "Against the authors' loop: the full path at the paper's geometry, one frame at a time"}  # module: its section's title


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
    parser.add_argument("--only", action="append", choices=list(SUITES), help="run only this benchmark (repeatable): its section of OUT is replaced, the others kept")
    args = parse(parser)
    checkpoint = demo_checkpoint(args.checkpoint)
    started, sections = time.perf_counter(), {}
    for name, title in SUITES.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        suite = importlib.import_module(f"benchmarks.{name}")  # imported when run: --only rwr needs no ffmpeg, which the labelling suite imports
        tables = suite.run(args.device, args.quick) if name in ("train_memory", "label_throughput") else suite.run(args.device, args.quick, checkpoint)
        text = "\n".join(table.markdown() for table in tables)
        print(f"## {title}\n\n{text}", flush=True)
        sections[title] = f"_{time.perf_counter() - start:.0f} s{', run on its own (--only)' if args.only else ''}_\n\n{text}"
    command = f"python -m benchmarks.run_all{'' if args.device == 'cpu' else f' --device {args.device}'}{' --quick' if args.quick else ''}{''.join(f' --only {name}' for name in args.only or [])}"
    run_line = f"`{command}` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC in {time.perf_counter() - started:.0f} s"
    if args.only:
        header, kept = read_results(args.out)
        header = without_earlier_run(header, command)
        header += [f"- then {run_line}, on this machine:", *(f"  {line}" for line in machine(args.device).splitlines())] + ([f"  - {args.note}"] if args.note else [])
        sections = {title: sections.get(title, kept.get(title)) for title in [*kept, *sections]}
    else:
        header = ["# wflwv performance results", "", f"Written by `make bench-perf` ({run_line}). See benchmarks/README.md for what each table measures.", "",
                  machine(args.device)] + ([f"- {args.note}"] if args.note else [])
    io.save_text(args.out, "\n".join(header) + "\n\n" + "\n".join(f"## {title}\n\n{text}" for title, text in sections.items()))
    print(f"wrote {args.out}")


def without_earlier_run(header: list[str], command: str) -> list[str]:
    """The header without the lines of an earlier run of the same command, whose sections this run replaces."""
    kept, skipping = [], False
    for line in header:
        skipping = line.startswith(f"- then `{command}`") or (skipping and line.startswith("  "))
        if not skipping:
            kept.append(line)
    return kept


def read_results(path: Path) -> tuple[list[str], dict[str, str]]:
    """The header lines of a RESULTS.md and its sections' text by title."""
    header, *parts = path.read_text().split("\n## ")
    return header.rstrip("\n").splitlines(), {part.split("\n", 1)[0]: part.split("\n", 1)[1].lstrip("\n") for part in parts}


if __name__ == "__main__":
    main()
