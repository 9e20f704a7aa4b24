"""Leaderboards and plots: every table says which NME normalisation and which NMF definition it uses."""

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from wflwv import io  # noqa: E402

NORM_TEXT = {
    "interocular": "inter-ocular distance (points 60-72)",
    "interpupil": "inter-pupil distance (points 96-97)",
    "diagonal": "box diagonal",
}
# Tables show the paper's NMF x100 like NME; the released NMJ already carries its own factor.
NMF_TABLE_SCALE = {"paper": 100.0, "released": 1.0}
NMF_TEXT = {
    "paper": "NMF as in the paper (face area = area of the ground-truth landmarks' box), x100",
    "released": "NMJ of the authors' released code (100 x 256 x the paper's NMF)",
}


@dataclass
class Leaderboard:
    table: pd.DataFrame  # one row per method: nme_<split>, nmf_<split>, solver_iters_per_frame, fps
    norm: str
    nmf_definition: str
    splits: tuple[str, ...]

    @property
    def caption(self) -> str:
        return f"NME normalised by the {NORM_TEXT[self.norm]}, x100. {NMF_TEXT[self.nmf_definition]}."

    @property
    def markdown(self) -> str:
        columns = ["method"] + [f"{m}_{s}" for s in self.splits for m in ("nme", "nmf")] + ["solver_iters_per_frame", "fps"]
        header = ["method"] + [f"{m.upper()} {s}" for s in self.splits for m in ("nme", "nmf")] + ["solver iters/frame", "frames/s"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, row in self.table[columns].iterrows():
            lines.append("| " + " | ".join([row["method"]] + [f"{row[c]:.3f}" if c.startswith(("nme", "nmf")) else f"{row[c]:.1f}" for c in columns[1:]]) + " |")
        return "\n".join(lines) + f"\n\n{self.caption}\n"

    def write(self, out: Path) -> None:
        io.save_text(out / "leaderboard.md", self.markdown)
        with io.atomic_path(out / "leaderboard.csv") as tmp:
            self.table.to_csv(tmp, index=False)
        io.save_parquet(out / "leaderboard.parquet", self.table.assign(norm=self.norm, nmf_definition=self.nmf_definition))


def plot_nme_vs_nmf(board: Leaderboard, path: Path) -> None:
    """NME against NMF for every method and split (the paper's figure 5): lower-left is better."""
    figure, axes = plt.subplots(1, len(board.splits), figsize=(5.5 * len(board.splits), 4.5), squeeze=False)
    for ax, split in zip(axes[0], board.splits):
        for _, row in board.table.iterrows():
            ax.scatter(row[f"nmf_{split}"], row[f"nme_{split}"], s=60)
            ax.annotate(row["method"], (row[f"nmf_{split}"], row[f"nme_{split}"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set(title=f"{split} videos", xlabel=f"NMF ({board.nmf_definition})", ylabel=f"NME ({board.norm}) x100")
        ax.grid(alpha=0.3)
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
