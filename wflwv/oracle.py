"""Is the labelling ensemble a good oracle? Checked on the synthetic world, whose landmarks are exact.

The paper could not check its labels: its ground truth was the ensemble itself. A build made from
the synthetic world's videos (same IDs, same frames) can be scored against the world's truth:

- the labels' NME and NMF as a function of ensemble size: the first m members (m = 1..N, in the
  label stage's order), their heatmaps averaged exactly as the label stage does;
- how well the split's score (ensemble variance) recovers the world's true difficulty: the AUROC of
  the score for telling the videos generated hard from those generated easy, and its Spearman rank
  correlation with each video's true share of ambiguous frames (`difficulty.parquet`).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.progress import track  # noqa: E402

from wflwv import io  # noqa: E402
from wflwv.data.video import iter_frames  # noqa: E402
from wflwv.data.videoset import VideoSet  # noqa: E402
from wflwv.errors import WflwvError  # noqa: E402
from wflwv.label import ensemble_frames, load_members  # noqa: E402
from wflwv.metrics import padded, score_videos  # noqa: E402
from wflwv.split import SCORES_NAME  # noqa: E402

BATCH_FRAMES = 64


def labels_by_size(models: list, frames: np.ndarray, boxes: np.ndarray, device: str) -> list[np.ndarray]:
    """The ensemble labels (frames, 98, 2) of the first m members, for m = 1..len(models)."""
    labels = []
    for size in range(1, len(models) + 1):
        keep = np.ones((size, len(frames)), dtype=bool)
        labels.append(ensemble_frames(models[:size], frames, boxes, keep, device)[0])
    return labels


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half): the Mann-Whitney form."""
    ranks = pd.Series(scores).rank().to_numpy()
    n_positive, n_negative = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def validate_oracle(build: Path, world_videos: Path, checkpoints: list[Path], out: Path, device: str = "cpu") -> pd.DataFrame:
    """NME and NMF (x100) of the labels of every ensemble size against the world's truth; writes tables and plots to `out`."""
    built, world = VideoSet(build), VideoSet(world_videos)
    ids = [i for i in built.ids() if built.boxes_path(i).is_file()]
    if not ids:
        raise WflwvError(build, "no video with boxes to label")
    models = load_members(tuple(checkpoints), device)
    by_size, truth = [[] for _ in models], []  # by_size[m - 1]: the labels of each video by the first m members
    for video_id in track(ids, description="oracle"):
        boxes, frames = built.load_boxes(video_id), np.stack(list(iter_frames(built.video_path(video_id))))
        truth.append(world.load_landmarks(video_id))
        if len(frames) != len(truth[-1]):
            raise WflwvError(built.video_path(video_id), f"has {len(frames)} frames, the world's video {len(truth[-1])}: not the same clip")
        batches = [labels_by_size(models, frames[s : s + BATCH_FRAMES], boxes[s : s + BATCH_FRAMES], device) for s in range(0, len(frames), BATCH_FRAMES)]
        for size, labels in enumerate(by_size):
            labels.append(np.concatenate([batch[size] for batch in batches]))
    rows = []
    for size, labels in enumerate(by_size, start=1):
        scores = score_videos(padded(labels), padded(truth))
        rows.append({"members": size, "nme": 100 * scores.nme, "nmf": 100 * scores.nmf})
    table = pd.DataFrame(rows)
    io.save_parquet(out / "oracle_by_size.parquet", table)
    plot_by_size(table, out / "oracle_by_size.png")
    return table


def split_recovery(build: Path, world_videos: Path, out: Path) -> dict[str, float]:
    """AUROC of the split score for the world's hard videos, and its rank correlation with their share
    of ambiguous frames; the ROC curve is plotted to out/split_roc.png."""
    scores = pd.read_parquet(Path(build) / SCORES_NAME)
    truth = pd.read_parquet(Path(world_videos) / "difficulty.parquet")
    joined = scores.merge(truth, on="id", suffixes=("", "_true"))
    if joined.empty:
        raise WflwvError(Path(build) / SCORES_NAME, "no video in common with the world's difficulty.parquet")
    positive = (joined["split_true"] == "hard").to_numpy()
    plot_roc(joined["score"].to_numpy(), positive, out / "split_roc.png")
    return {
        "videos": len(joined),
        "auroc_hard": auroc(joined["score"].to_numpy(), positive),
        "spearman_ambiguous": float(joined["score"].rank().corr(joined["ambiguous"].rank())),
    }


def plot_by_size(table: pd.DataFrame, path: Path) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in zip(axes, ("nme", "nmf")):
        ax.plot(table["members"], table[metric], marker="o")
        ax.set(xlabel="ensemble members", ylabel=f"{metric.upper()} x100 against the true landmarks", xticks=table["members"])
        ax.grid(alpha=0.3)
    figure.suptitle("The labelling ensemble as an oracle, on the synthetic world")
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def plot_roc(scores: np.ndarray, positive: np.ndarray, path: Path) -> None:
    """The ROC curve of the scores for telling the positives (the world's hard videos) from the rest."""
    ranked = positive[np.argsort(-scores, kind="stable")]
    true_rate = np.concatenate([[0], np.cumsum(ranked) / ranked.sum()])
    false_rate = np.concatenate([[0], np.cumsum(~ranked) / (~ranked).sum()])
    figure, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(false_rate, true_rate, marker=".", label=f"ensemble variance (AUROC {auroc(scores, positive):.2f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="easy videos ranked as hard", ylabel="hard videos ranked as hard", title="The split against the world's truth")
    ax.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
