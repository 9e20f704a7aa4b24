"""The released protocol against benchmarks/authors_loop.py, the authors' one-frame-at-a-time loop re-implemented from
their conventions, at the paper's geometry (256x256 crops, 98 heatmaps of 64x64; narrow widths for CPU time), on a
contractive released-format checkpoint; and the two released options that change inference."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks import authors_loop
from wflwv.data.video import iter_frames
from wflwv.data.videoset import VideoSet
from wflwv.inference import VideoStream, predict_videos
from wflwv.models import LDEQ

from conftest import write_wflwv

NARROW = {"injection_width": 8, "cell_base_width": 8, "cell_width_increment": 4, "max_iters": 6, "anderson_m": 3}


def released_checkpoint(path, solver: str, **options) -> LDEQ:
    """ldeq_paper's geometry at narrow widths in the authors' format, its cell made a contraction, loaded back."""
    return authors_loop.contractive_checkpoint(path, 5, **NARROW, solver=solver, **options)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> VideoSet:
    return VideoSet(write_wflwv(tmp_path_factory.mktemp("authors") / "WFLW_V"))


def wflwv_run(model, videos: VideoSet, protocol: str, rwr: bool, rwr_cap: int = 1, **options) -> dict[str, np.ndarray]:
    streams = (VideoStream(i, iter_frames(videos.load(i).frames_path), videos.load(i).boxes) for i in videos.ids())
    run = predict_videos(model, streams, slots=2, warm_start=rwr, max_iters=rwr_cap if rwr else None, protocol=protocol, **options)
    return {p.id: p for p in run}


def authors_run(model, videos: VideoSet, rwr: bool) -> dict[str, np.ndarray]:
    return {i: np.stack(list(authors_loop.video_landmarks(model, authors_loop.read_bgr_frames(videos.load(i).frames_path), videos.load(i).boxes, rwr)))
            for i in videos.ids()}


def gaps(ours: dict, theirs: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.linalg.norm(ours[i].landmarks - theirs[i], axis=-1).ravel() for i in theirs])


@pytest.mark.parametrize("solver", ["fpi", "anderson"])
@pytest.mark.parametrize("rwr", [False, True], ids=["cold start", "RwR"])
def test_the_released_protocol_gives_the_authors_loop_landmarks_at_the_paper_geometry(videos, tmp_path, solver, rwr):
    model = released_checkpoint(tmp_path / "final.pth.tar", solver)
    assert (model.args.im_size, model.args.heatmap_size, model.args.n_keypoints) == (256, 64, 98)
    theirs = authors_run(model, videos, rwr)
    released = wflwv_run(model, videos, "released", rwr)
    if not rwr:  # the cell contracts: cold solves end near the fixed point, so the comparison is not of chaos
        assert np.median(np.concatenate([p.residuals for p in released.values()])) < 0.02
    assert np.median(gaps(released, theirs)) < 1e-3
    assert np.max(gaps(released, theirs)) < 0.2
    assert np.median(gaps(wflwv_run(model, videos, "wflwv", rwr), theirs)) > 0.05  # the conventions matter at this geometry too


def test_take_one_less_inference_step_skips_the_extra_evaluation_in_cold_start_only(videos, tmp_path):
    plain = released_checkpoint(tmp_path / "plain.pth.tar", "anderson")
    one_less = released_checkpoint(tmp_path / "one_less.pth.tar", "anderson", take_one_less_inference_step=True)
    for rwr in (False, True):
        theirs, ours = authors_run(one_less, videos, rwr), wflwv_run(one_less, videos, "released", rwr)
        assert np.median(gaps(ours, theirs)) < 1e-3
        baseline = wflwv_run(plain, videos, "released", rwr)
        differs = np.median(gaps(ours, {i: p.landmarks for i, p in baseline.items()})) > 1e-3
        assert differs == (not rwr)  # the release's RwR script resets the option to its own default, False
        extra = [int(p.iterations[0]) for p in baseline.values()], [int(p.iterations[0]) for p in ours.values()]
        assert extra[0] == [e + (not rwr) for e in extra[1]]


def test_a_learned_softargmax_beta_is_softplus_of_beta_for_every_heatmap(tmp_path):
    learned = released_checkpoint(tmp_path / "learned.pth.tar", "fpi", cell_softargmax_beta=0.4, cell_learn_softargmax_beta=True)
    fixed = released_checkpoint(tmp_path / "fixed.pth.tar", "fpi", cell_softargmax_beta=float(F.softplus(torch.tensor(0.4, dtype=torch.float64))))
    plain = released_checkpoint(tmp_path / "plain.pth.tar", "fpi", cell_softargmax_beta=0.4)
    assert learned.state_dict().keys() == plain.state_dict().keys()  # the release registers no parameter for it
    images = torch.randn(2, 3, 256, 256)
    with torch.inference_mode():
        points = {name: m(images, protocol="released").landmarks for name, m in (("learned", learned), ("fixed", fixed), ("plain", plain))}
    torch.testing.assert_close(points["learned"], points["fixed"])
    assert (points["learned"] - points["plain"]).abs().max() > 1e-3


def test_the_adaptive_rule_runs_under_the_released_protocol(videos, tmp_path):
    """RwR (adaptive): cap 2 and the tolerance given. Under the released protocol a tolerance no residual meets is
    plain RwR (2 it), one every residual meets RwR (1 it), each with the release's extra evaluation."""
    model = released_checkpoint(tmp_path / "final.pth.tar", "fpi")
    capped = {cap: wflwv_run(model, videos, "released", True, rwr_cap=cap) for cap in (1, 2)}
    between = float(np.median(np.concatenate([p.residuals for p in capped[1].values()])))  # the first iteration's residuals
    runs = {tol: wflwv_run(model, videos, "released", True, rwr_cap=2, tol=tol) for tol in (0.0, between, 1e9)}
    assert np.max(gaps(runs[0.0], {i: p.landmarks for i, p in capped[2].items()})) < 1e-9
    assert np.max(gaps(runs[1e9], {i: p.landmarks for i, p in capped[1].items()})) < 1e-9
    iterations = np.concatenate([p.iterations for p in runs[between].values()])
    assert set(np.unique(iterations)) == {2, 3}  # the rule decides per frame
