import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from wflwv.bench import BenchSettings, run_bench
from wflwv.cli import main
from wflwv.errors import WflwvError
from wflwv.report import write_report

# Appended to a copy of the page: after loading, the body records how many images there are and which failed to decode.
IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const broken = [...document.images].filter(image => !(image.complete && image.naturalWidth > 0));
  document.body.dataset.images = document.images.length;
  document.body.dataset.broken = broken.map(image => image.getAttribute("src")).join(" ") || "none";
});
</script>"""


def chromium(page: Path, profile: Path, *options: str) -> str:
    """Open a page in headless Chromium (Debian's package; `make system-deps` installs it) and return its stdout."""
    command = [
        shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
        "--window-size=1280,2000", *options, page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


class TableRows(HTMLParser):
    """The text of each row's cells, per table id."""

    def __init__(self):
        super().__init__()
        self.tables, self.table, self.row, self.cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs).get("id"), [])
        elif tag == "tr" and self.table is not None:
            self.row = []
            self.table.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def test_report_renders_tables_plots_and_clips_in_chromium(bench_run, tmp_path):
    out, boards = bench_run
    page = write_report(out)
    probe = out / "report_probe.html"
    probe.write_text(page.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    dom = chromium(probe, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")

    images, broken = re.search(r'data-images="(\d+)" data-broken="([^"]*)"', dom).groups()
    clips = sorted(p.name for p in (out / "clips").glob("*.gif"))
    assert int(images) == 3 + len(clips) and broken == "none"  # CED, NME vs NMF, flicker, and one GIF per hardest video
    assert clips == ["h1.gif", "h2.gif"]  # the hard split has two videos

    parser = TableRows()
    parser.feed(dom)
    stills, summary, full = (parser.tables[name] for name in ("still_leaderboard", "video_summary", "video_leaderboard"))
    assert stills[0][:4] == ["model", "params (M)", "MACs (M)", "latency (ms)"]
    assert [row[0] for row in stills[1:]] == ["ldeq_a", "ldeq_b", "regression"]
    assert len(full) - 1 == len(boards["videos"].table)
    # per model and prediction set: raw, the best setting of each of the 4 filters; RwR at each cap and adaptive for the two LDEQs
    assert [row[1] for row in summary[1:] if row[0] == "ldeq_a"][0] == "raw" and len(summary) - 1 == 4 * 5 + 2 * 3
    assert "RwR (2 it)" in {row[1] for row in summary} and "NMF as in the paper" in dom
    # the external prediction set, with intervals, and its paired differences
    noisy = next(row for row in summary if row[:2] == ["noisy_truth", "raw"])
    assert noisy[2:4] == ["wflw98", "interocular"]  # every row says its point scheme and normalisation
    assert re.fullmatch(r"\d+\.\d{3} \[\d+\.\d{3}, \d+\.\d{3}\]", noisy[4]), noisy
    differences = parser.tables["video_differences"]
    assert any(row[:2] == ["noisy_truth", "raw"] and row[2].startswith("0.000 [0.000, 0.000]") for row in differences)
    assert "noisy truth" in dom and "not causal (offline)" in dom

    chromium(page, tmp_path / "profile", f"--screenshot={tmp_path / 'page.png'}")
    screenshot = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    assert screenshot.shape == (2000, 1280, 3)
    assert screenshot.std() > 20 and len(np.unique(screenshot.reshape(-1, 3), axis=0)) > 100


def test_report_of_a_stills_only_run_has_no_video_section(bench_world, tmp_path, capsys):
    run_bench(bench_world.checkpoints[2:], tmp_path, stills=bench_world.stills, settings=BenchSettings(latency_runs=1))
    with mock.patch.object(sys, "argv", ["wflwv", "report", str(tmp_path)]), pytest.raises(SystemExit) as exit:
        main()
    assert exit.value.code == 0 and capsys.readouterr().out == f"report: {tmp_path / 'report.html'}\n"
    page = (tmp_path / "report.html").read_text()
    assert 'id="still_leaderboard"' in page and "ced.png" in page
    assert "video_leaderboard" not in page and "clips/" not in page


def test_report_of_a_folder_that_is_not_a_bench_run_is_refused(tmp_path):
    with pytest.raises(WflwvError, match="bench.json.*no bench manifest"):
        write_report(tmp_path)


def test_report_of_a_predictions_only_bench_renders_in_chromium(bench_world, tmp_path, capsys):
    """docs/submission.md's flow: a prediction set benched without any model, then its report, through the CLI."""
    out = tmp_path / "out"
    for args in (("bench", "--predictions", f"noisy_truth={bench_world.noisy_truth}", "--videos", bench_world.videos, "--filters", "ema", "--out", out), ("report", out)):
        with mock.patch.object(sys, "argv", ["wflwv", *map(str, args)]), pytest.raises(SystemExit) as exit:
            main()
        assert exit.value.code == 0, capsys.readouterr().err
    probe = out / "report_probe.html"
    probe.write_text((out / "report.html").read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    dom = chromium(probe, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    images, broken = re.search(r'data-images="(\d+)" data-broken="([^"]*)"', dom).groups()
    assert sorted(p.name for p in (out / "clips").glob("*.gif")) == ["h1.gif", "h2.gif"]
    assert int(images) == 2 + 2 and broken == "none"  # NME vs NMF, flicker, and the two hard videos' GIFs
    parser = TableRows()
    parser.feed(dom)
    rows = [row[:2] for row in parser.tables["video_summary"][1:]]  # raw and the best EMA setting
    assert [model for model, _ in rows] == ["noisy_truth"] * 2 and rows[0][1] == "raw" and rows[1][1].startswith("ema"), rows
    assert "noisy truth" in dom and "not causal (offline)" in dom and "model noisy_truth" in dom
