"""What every benchmark shares: command-line options, tables, timing, the WFLW-V length mix, models and videos."""

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoItem, VideoSet
from wflwv.inference import VideoStream
from wflwv.models import create_model, load_checkpoint, load_config
from wflwv.synth import Preset, generate

REPO = Path(__file__).resolve().parents[1]
FRAME_COUNTS = REPO / "benchmarks" / "data" / "wflwv_frame_counts.json"
DEMO_CHECKPOINT = REPO / "runs" / "demo" / "ldeq" / "checkpoint.pth.tar"  # what `make demo` trains
WORLD = REPO / "runs" / "bench" / "world"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in self.rows]
        return "\n".join(lines + [""] + [f"- {note}" for note in self.notes]).rstrip() + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def options(description: str, checkpoint: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes, for development (a minute or less)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 1: on a shared machine more threads than free cores spin and run many times slower; schedules.py and limit.py compare 1 and all cores unless given)")
    if checkpoint:
        parser.add_argument("--checkpoint", type=Path, help="trained LDEQ checkpoint (default: runs/demo/ldeq/checkpoint.pth.tar if present, else random weights)")
    return parser


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    torch.set_num_threads(args.threads or 1)
    return args


def print_tables(tables: list[Table]) -> None:
    for table in tables:
        print(table.markdown())


def wflwv_lengths() -> np.ndarray:
    """Frame counts of the 1000 WFLW-V videos, in increasing order (from the distribution kept in FRAME_COUNTS)."""
    counts = json.loads(FRAME_COUNTS.read_text())["videos_per_frame_count"]
    return np.repeat(np.array([int(length) for length in counts], dtype=np.int64), list(counts.values()))


def sample_lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(wflwv_lengths(), size=n)


def model_for(config: str, checkpoint: Path | None, device: str, seed: int = 0, args: dict | None = None) -> tuple[torch.nn.Module, str]:
    """A trained model from `checkpoint`, or the config's model with random weights (its args updated by `args`); and a line saying which."""
    if checkpoint is not None:
        model, _ = load_checkpoint(checkpoint, map_location=device)
        return model.eval(), f"trained weights from {repo_relative(checkpoint)}"
    torch.manual_seed(seed)
    spec = load_config(config)
    spec["args"] |= args or {}
    changed = "".join(f", {name} = {value}" for name, value in (args or {}).items())
    return create_model(spec).to(device).eval(), f"{config} with random weights (seed {seed}{changed})"


def repo_relative(path: Path) -> str:
    """The path as RESULTS.md shows it, never the machine's absolute path: relative to the repository,
    or only the file's name when it is elsewhere."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else f"{path.name} (outside the repository)"


def demo_checkpoint(given: Path | None) -> Path | None:
    """The checkpoint given, else the one `make demo` trains if it is there."""
    return given if given is not None else (DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_file() else None)


def synthetic_streams(lengths: np.ndarray, size: int = 96, pool: int = 8, seed: int = 0) -> Callable[[], Iterator[VideoStream]]:
    """Videos of the given lengths made of random frames and jittering boxes: a schedule's workload without decoding.

    Returns a function making fresh streams, so that every schedule gets the same frames.
    """
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (pool, size, size, 3), dtype=np.uint8)
    corners = rng.uniform(size * 0.1, size * 0.2, (int(lengths.max()), 2))
    boxes = np.concatenate([corners, corners + size * 0.6], axis=1)

    def streams() -> Iterator[VideoStream]:
        for index, length in enumerate(lengths):
            yield VideoStream(f"v{index:04d}", (frames[(index + t) % pool] for t in range(length)), boxes[:length])

    return streams


def synthetic_world(per_split: int) -> VideoSet:
    """Hard and easy synthetic videos with WFLW-V lengths and exact landmarks, rendered once into runs/bench/world/<per_split>."""
    preset = Preset(0, 0, per_split, (160, 192), (90, 120), (256, 256), (100, 140))
    generate(WORLD / str(per_split), preset, workers=1)
    return VideoSet(WORLD / str(per_split) / "videos")


def decoded(item: VideoItem) -> tuple[np.ndarray, np.ndarray]:
    """A video's frames decoded into memory, and its boxes."""
    return np.stack(list(iter_frames(item.frames_path))), item.boxes
