"""bench reports each DEQ run's final solver residual and warns, in the leaderboard and the report, about a model that does not converge."""

import json

import numpy as np

from conftest import ldeq_checkpoint, write_wflwv

from wflwv.bench import BenchSettings, run_bench
from wflwv.report import write_report


def test_bench_reports_final_residuals_and_warns_about_a_model_that_does_not_converge(tmp_path):
    videos = write_wflwv(tmp_path / "WFLW_V")
    contractive = ldeq_checkpoint(tmp_path / "contractive.pth.tar", 0, max_iters=8)
    chaotic = ldeq_checkpoint(tmp_path / "chaotic.pth.tar", 0, cell_softargmax_beta=3.0, max_iters=8)
    out = tmp_path / "run"
    board = run_bench([contractive, chaotic], out, videos=videos, settings=BenchSettings(slots=2, rwr_iters=(1,), adaptive_tol=None, filters=("ema",)))["videos"]
    manifest = {entry["label"]: entry for entry in json.loads((out / "bench.json").read_text())["models"]}
    assert manifest["contractive"]["converged"] is True and manifest["chaotic"]["converged"] is False
    for label, entry in manifest.items():
        assert set(entry["final_residual"]) == {"raw", "RwR (1 it)"}
        rows = board.table[(board.table["model"] == label) & board.table["method"].isin(["raw", "RwR (1 it)"])].set_index("method")["final_residual"]
        assert np.allclose([entry["final_residual"][m] for m in rows.index], rows.to_numpy())
    assert manifest["chaotic"]["final_residual"]["raw"] > 5e-3 >= manifest["contractive"]["final_residual"]["raw"]  # the config's tolerance
    for text in ((out / "video_leaderboard.md").read_text(), write_report(out).read_text()):
        assert "WARNING: chaotic does not converge" in text and "contractive does not" not in text
        assert "final residual" in text
