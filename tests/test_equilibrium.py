import argparse

import numpy as np
import torch

from wflwv.data.videoset import VideoSet
from wflwv.equilibrium import diagnose, frame_pairs, measure_pairs
from wflwv.models.ldeq import build_solver
from test_bench import face_video
from test_inference import tiny_ldeq


def pairs(model, count=3):
    torch.manual_seed(1)
    previous, current = torch.randn(count, 3, 64, 64), torch.randn(count, 3, 64, 64)
    truth = np.random.default_rng(0).uniform(10, 50, (count, 98, 2))
    return model, previous, current, truth


def test_a_cell_that_ignores_z_forgets_the_previous_frame_in_one_iteration():
    model = tiny_ldeq()
    with torch.no_grad():
        model.deq_layer.cell.tail.conv.weight[:, : model.args.z_width] = 0
    measured = measure_pairs(*pairs(model))
    np.testing.assert_allclose(measured["contraction"], 0, atol=1e-5)
    np.testing.assert_allclose(measured["spread"], 0, atol=1e-5)
    assert (measured["shift"] > 0).all() and measured["converged"].all()


def test_a_solve_that_never_meets_its_tolerance_is_counted_unconverged():
    measured = measure_pairs(*pairs(tiny_ldeq(rel_diff_target=0.0)))
    assert not measured["converged"].any() and measured["re_solved"].all()  # plain iteration was tried, and failed too


def test_where_the_models_solver_does_not_converge_plain_iteration_finds_the_fixed_points():
    model = tiny_ldeq(rel_diff_target=1e-6)
    model.deq_layer.solve = build_solver(argparse.Namespace(**{**vars(model.args), "rel_diff_target": 0.0}))  # Anderson that never stops
    measured = measure_pairs(*pairs(model))
    plain = measure_pairs(*pairs(tiny_ldeq(rel_diff_target=1e-6, solver="fpi")))  # the same weights, solved by plain iteration alone
    assert measured["converged"].all() and measured["re_solved"].all() and not plain["re_solved"].any()
    for column in ("spread", "shift", "contraction"):
        np.testing.assert_allclose(measured[column], plain[column], rtol=1e-5, atol=1e-6)


def test_a_contractive_cell_keeps_a_share_of_the_gap_and_has_one_fixed_point():
    measured = measure_pairs(*pairs(tiny_ldeq(rel_diff_target=1e-6)))
    assert ((measured["contraction"] > 0.01) & (measured["contraction"] < 1)).all()
    # solved to a tight tolerance, warm and cold starts meet, far closer than the two frames' fixed points
    assert (measured["spread"] < 0.05 * measured["shift"]).all()


def test_diagnose_reports_every_split(tmp_path):
    videos = VideoSet(tmp_path)
    for seed, video_id in enumerate(["h1", "e1"]):
        videos.write(video_id, *face_video(6, seed), fps=30)
    videos.write_split("hard", ["h1"])
    videos.write_split("easy", ["e1"])
    previous, current, truth = frame_pairs(videos, "h1", 3, 64)
    assert previous.shape == current.shape == (3, 3, 64, 64) and truth.shape == (3, 98, 2)
    table = diagnose(tmp_path, tiny_ldeq(), pairs_per_video=3)
    assert list(table["split"]) == ["hard", "easy"] and list(table["pairs"]) == [3, 3]
    assert table[["contraction", "mean_shift", "mean_spread", "max_spread"]].notna().all().all()
    assert (table["unconverged"] == 0).all() and (table["re_solved"] == 0).all()  # the contractive tiny cell meets its tolerance on every frame
