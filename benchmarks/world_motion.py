"""The synthetic world's true motion against real faces: landmark speeds and spectra per face part,
blinks, the talking mouth's rhythm and the head's angular speed, on the hard and easy videos of a preset;
and the NME that each of the bench's filter settings adds to the true landmarks (the cost of its lag).

Videos are planned, not rendered (a plan's landmarks are its video's), so the demo preset takes
seconds. docs/synth.md gives the real faces' figures and their sources.

    python -m benchmarks.world_motion [--preset demo] [--seed 0] [--videos N]
"""

import argparse
import math
from dataclasses import replace

from benchmarks.common import Table, print_tables
from wflwv.filters import FILTERS, sweep
from wflwv.synth.motion import REAL_FACES, measure_clip, summarise
from wflwv.synth.world import PRESETS, plan_video


def run(preset: str = "demo", seed: int = 0, videos: int | None = None) -> list[Table]:
    chosen = PRESETS[preset] if videos is None else replace(PRESETS[preset], videos=videos)
    smoothers = tuple(setting for name in FILTERS for setting in sweep(name))
    figures = {
        kind: summarise([measure_clip(plan_video(chosen, seed, kind, index)[0], chosen.fps, smoothers) for index in range(chosen.videos)])
        for kind in ("hard", "easy")
    }
    table = Table(
        f"True motion of the synthetic world ({preset} preset, seed {seed}, {chosen.videos} hard and {chosen.videos} easy videos)",
        ["figure", "hard: median [10th-90th percentile]", "easy: median [10th-90th percentile]", "real faces"],
        notes=["speeds in inter-ocular distances (outer eye corners) per second; a rate where no percentiles are given",
               "median frequency: the frequency below which half the power of the landmarks' velocity lies",
               "NME that a filter adds to the truth: the mean over videos of the NME between the true landmarks and the same smoothed online by the bench's filter settings"],
    )
    for figure in figures["hard"]:
        real = REAL_FACES.get(figure)
        table.rows.append([figure, _cell(figures["hard"][figure]), _cell(figures["easy"][figure]), f"{real[0]:g}-{real[1]:g}" if real else ""])
    return [table]


def _cell(figure: tuple[float, float, float]) -> str:
    middle, low, high = figure
    return f"{middle:.3g}" if math.isnan(low) else f"{middle:.3g} [{low:.3g}-{high:.3g}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=list(PRESETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--videos", type=int, help="videos per split (default: the preset's)")
    args = parser.parse_args()
    print_tables(run(args.preset, args.seed, args.videos))


if __name__ == "__main__":
    main()
