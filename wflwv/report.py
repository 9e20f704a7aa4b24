"""Leaderboards, plots and the static HTML report: every table says which NME normalisation and NMF definition it uses."""

import html
import json
from urllib.parse import quote
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from wflwv import io  # noqa: E402
from wflwv.data.video import iter_frames  # noqa: E402
from wflwv.data.vw300 import open_video_set  # noqa: E402
from wflwv.data.wflw import SUBSETS  # noqa: E402
from wflwv.errors import WflwvError  # noqa: E402
from wflwv.metrics import FAILURE_THRESHOLD, ced  # noqa: E402
from wflwv.predictions import prediction_file, read_landmarks  # noqa: E402
from wflwv.uncertainty import LEVEL  # noqa: E402

NORM_TEXT = {
    "interocular": "inter-ocular distance (outer eye corners: points 60-72 of 98, 36-45 of 68)",
    "interpupil": "inter-pupil distance (pupils 96-97 of 98; eye centres of 68)",
    "diagonal": "box diagonal",
}
# Tables show the paper's NMF x100 like NME; the released NMJ already carries its own factor.
NMF_TABLE_SCALE = {"paper": 100.0, "released": 1.0}
NMF_TEXT = {
    "paper": "NMF as in the paper (face area = area of the ground-truth landmarks' box), x100",
    "released": "NMJ of the authors' released code (100 x 256 x the paper's NMF)",
}
VIDEO_NOTE = (
    "Filters run in their online (causal) form over the raw predictions (for a DEQ, its cold start); "
    "their rows carry the raw run's solver iterations and frames/s. "
    "Memory: the share of its previous frame's output a method keeps, relative to the raw predictions (an EMA of alpha keeps 1 - alpha). "
    "NMF mouth, eyes: the flicker of those landmarks alone, on the whole face's scale; lag: the delay in frames at which the "
    "method's landmark motion best matches the truth's (an EMA of alpha lags about (1 - alpha) / alpha). "
    "Every region, the Allan deviation over 1-32 frames and the boxes' own jitter are in the parquet and CSV files (docs/metrics.md)."
)
FAIR_LABELS_NOTE = (
    " A member of the labelling ensemble is scored against the labels without it (leave-one-out: the other members' mean), "
    "so that it is not rewarded for agreeing with itself. Label shift: the NME of each leave-one-out label set against the full labels, "
    "averaged over the members: how far the labels move when one member is dropped, their own uncertainty on the NME's scale."
)
STILL_NOTE = (
    "FR10: % of images with NME above 10; AUC10: area under the CED up to NME 10, x100. "
    "MACs: multiply-adds of one forward pass on a test image (a DEQ's at the iterations its solver took); "
    "latency: median of several batch-1 forward passes on the benchmark's device."
)
INTERVAL_NOTE = f"[low, high]: {100 * LEVEL:.0f}% bootstrap interval, resampling the {{units}} (seeded)."
STILL_SETS = ("full", *SUBSETS)
CURVE_MARKERS = {"raw": "o", "rwr": "*", "ema": "s", "one_euro": "^", "savgol": "D", "kalman": "v"}


@dataclass
class Leaderboard:
    name: str  # file stem of its markdown, CSV and parquet
    table: pd.DataFrame
    columns: dict[str, tuple[str, str]]  # shown column -> (header, format spec)
    norm: str
    nmf_definition: str | None = None
    note: str = ""
    interval_note: str | None = None  # what [low, high] is, where not the bootstrap over the units

    @property
    def caption(self) -> str:
        units = "images" if self.nmf_definition is None else "videos"
        parts = [f"NME normalised by the {NORM_TEXT[self.norm]}, x100."]
        if self.shows_intervals:
            parts.append(self.interval_note or INTERVAL_NOTE.format(units=units))
        if self.nmf_definition:
            parts.append(f"{NMF_TEXT[self.nmf_definition]}.")
        return " ".join(parts + [self.note]).strip()

    @property
    def shows_intervals(self) -> bool:
        """Whether a shown cell carries [low, high] (see `cell`)."""
        return any(has_interval(row, c) for _, row in self.table.iterrows() for c in self.columns)

    def cells(self) -> list[list[str]]:
        return [[cell(row, c, spec) for c, (_, spec) in self.columns.items()] for _, row in self.table.iterrows()]

    @property
    def markdown(self) -> str:
        headers = [header for header, _ in self.columns.values()]
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.cells()]
        return "\n".join(lines) + f"\n\n{self.caption}\n"

    @property
    def html(self) -> str:
        head = "".join(f"<th>{html.escape(header)}</th>" for header, _ in self.columns.values())
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.cells())
        return f'<table id="{self.name}"><caption>{html.escape(self.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def write(self, out: Path) -> None:
        labelled = self.table.assign(norm=self.norm, nmf_definition=self.nmf_definition or "")
        io.save_text(out / f"{self.name}.md", self.markdown)
        with io.atomic_path(out / f"{self.name}.csv") as tmp:
            labelled.to_csv(tmp, index=False)
        io.save_parquet(out / f"{self.name}.parquet", labelled)


def has_interval(row: pd.Series, column: str) -> bool:
    """Whether `cell` shows the value with its interval: a number whose `<column>_low` the row has."""
    value = row[column]
    return not isinstance(value, str) and value is not None and pd.notna(value) and f"{column}_low" in row.index and pd.notna(row[f"{column}_low"])


def cell(row: pd.Series, column: str, spec: str) -> str:
    """A value as text; blank where unknown; with its interval (`<column>_low`, `_high`) and P(< 0) (`_p`) where the row has them."""
    value = row[column]
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    text = format(value, spec)
    if has_interval(row, column):
        text += f" [{row[f'{column}_low']:{spec}}, {row[f'{column}_high']:{spec}}]"
    if f"{column}_p" in row.index and pd.notna(row[f"{column}_p"]):
        text += f" P<0 {row[f'{column}_p']:.2f}"
    return text


def video_splits(table: pd.DataFrame) -> list[str]:
    """The splits a video table scores, in order: those with a memory_<split> column."""
    return [c.removeprefix("memory_") for c in table.columns if c.startswith("memory_")]


def video_row_columns(splits: list[str]) -> list[str]:
    """What every row of a video table must have for video_leaderboard and the tables made from it."""
    return ["curve", "solver_iters_per_frame", "fps", *(f"{m}_{s}" for s in splits for m in ("nme", "nmf", "memory"))]


def video_leaderboard(table: pd.DataFrame, norm: str, nmf_definition: str) -> Leaderboard:
    """Rows: model, method, curve (raw, rwr or a filter's name), nme_<split>, nmf_<split>, memory_<split>, solver_iters_per_frame, fps,
    and wflwv.metrics.temporal_scores' figures as <name>_<split>, of which the first split's mouth and eyes NMF and lag are shown."""
    splits = video_splits(table)
    columns = {"model": ("model", ""), "method": ("method", "")}
    columns |= {name: (name, "") for name in ("scheme", "normalisation") if name in table.columns}
    fair = "label_shift_" + splits[0] in table.columns and table["label_shift_" + splits[0]].notna().any()
    columns |= {"labels": ("scored against", "")} if fair else {}
    columns |= {f"{m}_{s}": (f"{m.upper()} {s}" if m != "label_shift" else f"label shift {s}", ".3f") for s in splits for m in ("nme", "label_shift", "nmf")
                if m != "label_shift" or fair}
    columns |= {f"memory_{s}": (f"memory {s}", ".2f") for s in splits}
    temporal = {f"nmf_mouth_{splits[0]}": (f"NMF mouth {splits[0]}", ".3f"), f"nmf_eyes_{splits[0]}": (f"NMF eyes {splits[0]}", ".3f"), f"lag_{splits[0]}": (f"lag {splits[0]}", ".2f")}
    columns |= {name: shown for name, shown in temporal.items() if name in table.columns}
    columns |= {"solver_iters_per_frame": ("solver iters/frame", ".2f"), "fps": ("frames/s", ".1f")}
    columns |= {"final_residual": ("final residual", ".1e")} if "final_residual" in table.columns else {}
    return Leaderboard("video_leaderboard", table, columns, norm, nmf_definition, nonconvergence_note(table) + VIDEO_NOTE + (FAIR_LABELS_NOTE if fair else "") + excluded_frames_note(table, splits))


def nonconvergence_note(table: pd.DataFrame) -> str:
    """A warning naming the DEQs whose cold start does not meet their solver's tolerance (wflwv.bench.converges); "" when none."""
    if "converged" not in table.columns:
        return ""
    models = list(dict.fromkeys(table.loc[table["converged"].eq(False), "model"]))
    if not models:
        return ""
    return (f"WARNING: {', '.join(models)} does not converge (its cold start ends above its solver's tolerance: final residual column), "
            "so float rounding decides its landmarks and its rankings are noise. ")


def excluded_frames_note(table: pd.DataFrame, splits: list[str]) -> str:
    """A sentence counting the frames without ground truth (excluded from every score) per split; "" when there are none."""
    counts = {split: int(table[f"frames_excluded_{split}"].max()) for split in splits if f"frames_excluded_{split}" in table.columns}
    if not any(counts.values()):
        return ""
    return " Frames without ground truth, excluded from every score: " + ", ".join(f"{split} {count}" for split, count in counts.items()) + "."


def video_summary(board: Leaderboard) -> Leaderboard:
    """The video leaderboard cut to each model's raw and RwR rows and the best setting of each filter
    (lowest NME + NMF on the first split)."""
    table = board.table
    split = video_splits(table)[0]
    score = table[f"nme_{split}"] + table[f"nmf_{split}"]
    filtered = ~table["curve"].isin(["raw", "rwr"])
    best = score[filtered].groupby([table["model"], table["curve"]], sort=False).idxmin()
    kept = table[~filtered | table.index.isin(best)]
    note = f"Each filter's row is its setting with the lowest NME + NMF on the {split} videos (all settings: video_leaderboard.*). {board.note}"
    return Leaderboard("video_summary", kept.reset_index(drop=True), board.columns, board.norm, board.nmf_definition, note)


def video_differences(board: Leaderboard) -> Leaderboard:
    """The summary's rows with their paired differences: against their model's raw predictions and its best filter setting."""
    summary = video_summary(board)
    splits = video_splits(board.table)
    columns = {"model": ("model", ""), "method": ("method", "")}
    columns |= {f"{m}_{s}_vs_{a}": (f"{m.upper()} {s} - {against}", ".3f") for s in splits for a, against in (("raw", "raw"), ("filter", "best filter")) for m in ("nme", "nmf")}
    note = ("Paired bootstrap differences (this row minus the reference, resampling the same videos for both) against the model's raw predictions "
            "and its filter setting with the lowest NME + NMF on the first split; P<0: the share of resamples in which the difference is below zero (this row better).")
    return Leaderboard("video_differences", summary.table, columns, board.norm, board.nmf_definition, note)


def still_leaderboard(table: pd.DataFrame, norm: str) -> Leaderboard:
    """Rows: model, params_m, macs_m, latency_ms and nme/fr10/auc10_<set> for the full test set and each subset (x100)."""
    columns = {"model": ("model", ""), "params_m": ("params (M)", ".2f"), "macs_m": ("MACs (M)", ".1f"), "latency_ms": ("latency (ms)", ".1f")}
    columns |= {f"{m}_full": (f"{m.upper()} full", ".3f") for m in ("nme", "fr10", "auc10")}
    columns |= {f"nme_{s}": (f"NME {s}", ".3f") for s in SUBSETS}
    return Leaderboard("still_leaderboard", table, columns, norm, None, STILL_NOTE)


def read_leaderboard(path: Path) -> Leaderboard:
    """A leaderboard written by Leaderboard.write, from its parquet file."""
    if not path.is_file():
        raise WflwvError(path, "no such leaderboard (run wflwv bench first)")
    labelled = read_table(path)
    table = labelled.drop(columns=["norm", "nmf_definition"])
    norm = labelled["norm"].iloc[0]
    if path.stem == "video_leaderboard":
        return video_leaderboard(table, norm, labelled["nmf_definition"].iloc[0])
    if path.stem == "still_leaderboard":
        return still_leaderboard(table, norm)
    raise WflwvError(path, "expected video_leaderboard.parquet or still_leaderboard.parquet")


def read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        problem = " ".join(str(error).split())
        raise WflwvError(path, f"not a readable parquet file ({problem}): rerun wflwv bench") from None


def save_figure(figure: plt.Figure, path: Path) -> None:
    figure.tight_layout()
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)


def plot_nme_vs_nmf(board: Leaderboard, path: Path) -> None:
    """NME against NMF per split (the paper's figure 5): a colour per model, a curve per filter sweep, each
    starting from the model's unfiltered point; RwR's caps joined by a line. Lower-left is better."""
    table = board.table
    splits = video_splits(table)
    figure, axes = plt.subplots(1, len(splits), figsize=(6.5 * len(splits), 5), squeeze=False)
    models = list(dict.fromkeys(table["model"]))
    for ax, split in zip(axes[0], splits):
        for colour, model in enumerate(models):
            rows = table[table["model"] == model]
            raw = rows[rows["curve"] == "raw"]
            for curve, group in rows.groupby("curve", sort=False):
                points = group if curve in ("raw", "rwr") else pd.concat([raw, group])
                style = "none" if curve == "raw" else "-"
                ax.plot(points[f"nmf_{split}"], points[f"nme_{split}"], marker=CURVE_MARKERS.get(curve, "x"), linestyle=style, color=f"C{colour}", markersize=9 if curve == "rwr" else 5, alpha=0.85)
            x, y = rows[f"nmf_{split}"], rows[f"nme_{split}"]
            errors = {axis: [values - rows[f"{column}_low"], rows[f"{column}_high"] - values] for axis, column, values in (("xerr", f"nmf_{split}", x), ("yerr", f"nme_{split}", y))}
            ax.errorbar(x, y, **errors, fmt="none", ecolor=f"C{colour}", elinewidth=0.8, alpha=0.35)
        ax.set(title=f"{split} videos (bars: {100 * LEVEL:.0f}% intervals)", xlabel=f"NMF ({board.nmf_definition})", ylabel=f"NME ({board.norm}) x100")
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=f"C{i}", lw=3, label=model) for i, model in enumerate(models)]
    handles += [Line2D([], [], color="grey", marker=m, linestyle="none", label=curve) for curve, m in CURVE_MARKERS.items() if curve in set(table["curve"])]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="best")
    save_figure(figure, path)


def plot_ced(per_image: pd.DataFrame, path: Path) -> None:
    """Cumulative error distribution of each model on the full still test set, up to NME 10."""
    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    thresholds = np.linspace(0, FAILURE_THRESHOLD, 201)
    full = per_image[per_image["subset"] == "full"]
    for model, rows in full.groupby("model", sort=False):
        ax.plot(100 * thresholds, ced(rows["nme"].to_numpy() / 100, thresholds), label=model)
    ax.set(xlabel="NME x100", ylabel="fraction of images", title="CED, full test set", ylim=(0, 1.01))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(figure, path)


def plot_flicker_trace(gt: np.ndarray, series: dict[str, np.ndarray], title: str, path: Path) -> None:
    """x and y over frames of one landmark: ground truth (T, 2) against each method's trajectory (T, 2) (the paper's figure 2)."""
    figure, axes = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    for axis, ax in enumerate(axes):
        ax.plot(gt[:, axis], color="black", lw=2.5, label="ground truth")
        for name, trajectory in series.items():
            ax.plot(trajectory[:, axis], lw=1.2, label=name)
        ax.set_ylabel(f"{'xy'[axis]} (pixels)")
        ax.grid(alpha=0.3)
    axes[0].set_title(title, fontsize=10)
    axes[1].set_xlabel("frame")
    axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8, ncol=2)
    save_figure(figure, path)


CLIP_COLOURS = [(0, 200, 0), (230, 40, 40), (40, 120, 255), (240, 200, 0)]  # RGB; ground truth first
CLIP_WIDTH, CLIP_FRAMES = 240, 60


def write_overlay_gif(frames_path: Path, landmarks: dict[str, np.ndarray], boxes: np.ndarray, fps: float, path: Path) -> None:
    """An animated GIF of the video around the face with each method's landmarks (T, N, 2) drawn as dots in CLIP_COLOURS.

    The first CLIP_FRAMES frames at the video's frame rate (flicker shows only between consecutive
    frames), CLIP_WIDTH pixels wide, over the region that holds the face in all of them."""
    shown = boxes[:CLIP_FRAMES]
    margin = 0.2 * (shown[:, 2:4] - shown[:, :2]).max()
    x1, y1 = np.floor(shown[:, :2].min(axis=0) - margin).astype(int)
    x2, y2 = np.ceil(shown[:, 2:4].max(axis=0) + margin).astype(int)
    images = []
    for index, frame in zip(range(len(shown)), iter_frames(frames_path)):
        h, w = frame.shape[:2]
        left, top = max(x1, 0), max(y1, 0)
        region = np.ascontiguousarray(frame[top : min(y2, h), left : min(x2, w)])
        scale = CLIP_WIDTH / region.shape[1]
        region = cv2.resize(region, (CLIP_WIDTH, max(1, round(region.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        for colour, points in zip(CLIP_COLOURS, landmarks.values()):
            for x, y in (points[index] - (left, top)) * scale:
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(region, (round(x), round(y)), 2, colour, -1, lineType=cv2.LINE_AA)
        images.append(Image.fromarray(region))
    with io.atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1240px; color: #222; padding: 0 16px; }
h1 { font-size: 24px; } h2 { font-size: 20px; margin-top: 32px; border-bottom: 1px solid #ccc; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
caption { caption-side: bottom; text-align: left; font-size: 12px; color: #555; padding-top: 6px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; white-space: normal; vertical-align: bottom; } th:first-child, th:nth-child(2), td:first-child, td:nth-child(2) { text-align: left; }
details { margin: 8px 0; } summary { cursor: pointer; color: #036; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; } figure { display: inline-block; margin: 8px 12px 8px 0; vertical-align: top; }
figcaption { font-size: 12px; color: #555; max-width: 320px; }
"""


def write_report(run: Path) -> Path:
    """Write RUN/report.html: the leaderboards, the plots and overlay GIFs of the hardest videos, all linked relatively."""
    manifest_path = run / "bench.json"
    if not manifest_path.is_file():
        raise WflwvError(manifest_path, "no bench manifest: is this a wflwv bench output folder?")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WflwvError(manifest_path, f"not a readable bench manifest ({error}): rerun wflwv bench") from None
    if not is_manifest(manifest):
        raise WflwvError(manifest_path, "not a bench manifest as wflwv bench writes it (stills and videos folders, entrants with labels and runs): rerun wflwv bench")
    io.require_writable(run)  # a read-only bench folder fails now, before any clip is drawn
    sections = []
    if manifest.get("stills"):
        board = read_leaderboard(run / "still_leaderboard.parquet")
        sections.append(section("Still images", manifest["stills"], board, ["ced.png"]))
    if manifest.get("videos"):
        board = read_leaderboard(run / "video_leaderboard.parquet")
        warning = nonconvergence_note(board.table)
        intro = (f'<p class="warning"><b>{html.escape(warning)}</b></p>' if warning else "") + prediction_sets(manifest)
        sections.append(section("Videos", manifest["videos"], video_summary(board), ["nme_vs_nmf.png", "flicker.png"], board, intro))
        sections.append(f'<h2>Differences</h2><div class="scroll">{video_differences(board).html}</div>\n')
        sections.append(clips_section(run, manifest, board))
    title = f"wflwv benchmark: {html.escape(run.resolve().name)}"
    page = f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{PAGE_STYLE}</style></head>\n<body><h1>{title}</h1>\n{"".join(sections)}\n</body></html>\n'
    io.save_text(run / "report.html", page)
    return run / "report.html"


def is_manifest(manifest) -> bool:
    """Whether a bench.json holds what the report reads: its folders as text, and entrants (a prediction set's with its method)."""
    if not isinstance(manifest, dict) or not all(isinstance(manifest.get(key), (str, type(None))) for key in ("stills", "videos")):
        return False
    predictions, models = manifest.get("predictions", []), manifest.get("models", [])
    return (isinstance(predictions, list) and isinstance(models, list) and all(is_entrant(entrant) for entrant in predictions + models)
            and all(isinstance(entry["runs"].get("raw"), str) and is_method(entry.get("method")) for entry in predictions))


def is_entrant(entrant) -> bool:
    """Whether a bench.json entrant is a label and its runs' folders by name."""
    runs = entrant.get("runs") if isinstance(entrant, dict) else None
    return isinstance(entrant, dict) and isinstance(entrant.get("label"), str) and isinstance(runs, dict) and all(isinstance(f, str) for f in runs.values())


def is_method(method) -> bool:
    return isinstance(method, dict) and isinstance(method.get("name"), str) and isinstance(method.get("description"), str) and method.get("causal") in (True, False, None)


def prediction_sets(manifest: dict) -> str:
    """A list of the prediction sets benched beside the models: name, folder, and what their method.json says."""
    items = []
    for entry in manifest.get("predictions", []):
        method = entry["method"]
        causal = {True: "causal (online)", False: "not causal (offline)", None: "causality not stated"}[method["causal"]]
        items.append(f"<li><b>{html.escape(entry['label'])}</b>: <code>{html.escape(entry['runs']['raw'])}</code>, {html.escape(method['name'])}, {causal}. {html.escape(method['description'])}</li>")
    return f"<p>Prediction sets:</p><ul>{''.join(items)}</ul>" if items else ""


def section(heading: str, source: str, board: Leaderboard, images: list[str], full: Leaderboard | None = None, intro: str = "") -> str:
    """A heading, an introduction, the board, optionally the full board it summarises (folded), and the images."""
    tables = f'{intro}<div class="scroll">{board.html}</div>'
    if full is not None:
        tables += f'<details><summary>All {len(full.table)} rows</summary><div class="scroll">{full.html}</div></details>'
    figures = "".join(image_tag(name, name) for name in images)
    return f"<h2>{html.escape(heading)}</h2><p>Data: <code>{html.escape(source)}</code></p>{tables}{figures}\n"


def image_tag(source: str, alt: str, caption: str | None = None) -> str:
    """A figure with an image, every string escaped (IDs come from files a user may not have written)."""
    caption = "" if caption is None else f"<figcaption>{html.escape(caption)}</figcaption>"
    return f'<figure><img src="{html.escape(quote(source))}" alt="{html.escape(alt)}">{caption}</figure>'


def clips_section(run: Path, manifest: dict, board: Leaderboard, count: int = 3) -> str:
    """Overlay GIFs of the `count` videos with the highest raw NME (averaged over models) on the first split."""
    videos = open_video_set(manifest["videos"])
    split = next(iter(manifest["splits"]))
    per_video = read_table(run / "per_video.parquet")
    raw = per_video[(per_video["method"] == "raw") & (per_video["split"] == split)]
    hardest = raw.groupby("id")["nme"].mean().sort_values(ascending=False).index[:count]
    model = (manifest["models"] + manifest.get("predictions", []))[0]
    methods = ["raw"] + ([best_method(board.table, model["label"], "rwr", split)] if model["deq"] else [])  # a prediction set has no RwR
    legend = ", ".join(f"{name} ({colour})" for name, colour in zip(["ground truth", *methods], ["green", "red", "blue"]))
    figures = []
    for video_id in hardest:
        item = videos.load(video_id)
        landmarks = {"ground truth": item.landmarks} | {m: read_landmarks(prediction_file(run / model["runs"][m], video_id)) for m in methods}
        write_overlay_gif(item.frames_path, landmarks, item.boxes, item.fps, run / "clips" / f"{video_id}.gif")
        figures.append(image_tag(f"clips/{video_id}.gif", video_id, f'{video_id}: raw NME {raw[raw["id"] == video_id]["nme"].mean():.2f}'))
    intro = f"<p>The {len(figures)} {split} videos with the highest raw NME, model {html.escape(model['label'])}: animated GIFs of their first {CLIP_FRAMES} frames, {html.escape(legend)}.</p>"
    return f"<h2>Hardest videos</h2>{intro}{''.join(figures)}\n"


def best_method(table: pd.DataFrame, model: str, curve: str, split: str) -> str:
    """The method of a curve with the lowest NME + NMF on a split (both as in the table)."""
    rows = table[(table["model"] == model) & (table["curve"] == curve)]
    return rows.loc[(rows[f"nme_{split}"] + rows[f"nmf_{split}"]).idxmin(), "method"]
