"""The schedules of benchmarks/schedules.py give the same landmarks on decoded videos, and batch as they say."""

import numpy as np
import pytest
import torch
from test_inference import tiny_ldeq

from benchmarks.schedules import batch_fill, on_threads, predict_equal_length, schedules, slot_calls
from wflwv.data.video import iter_frames, write_video
from wflwv.inference import VideoStream

LENGTHS = {"a": 4, "b": 4, "c": 4, "d": 2, "e": 5, "f": 2}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Small H.264 videos with some lengths shared: (path, boxes) by id."""
    folder, rng, found = tmp_path_factory.mktemp("videos"), np.random.default_rng(0), {}
    for video_id, length in LENGTHS.items():
        path = folder / f"{video_id}.mp4"
        write_video(path, rng.integers(0, 256, (length, 48, 64, 3), dtype=np.uint8), fps=30)
        corners = rng.uniform((4, 4), (24, 12), (length, 2))
        found[video_id] = (path, np.concatenate([corners, corners + rng.uniform(20, 30, (length, 1))], axis=1))
    return found


def decoded_streams(videos):
    return (VideoStream(video_id, iter_frames(path), boxes) for video_id, (path, boxes) in videos.items())


@pytest.mark.parametrize("warm_start", [True, False])
def test_the_three_schedules_give_the_same_landmarks_on_decoded_videos(videos, warm_start):
    model = tiny_ldeq()
    results = {name: {p.id: p for p in schedule(model, decoded_streams(videos), warm_start=warm_start, max_iters=2)} for name, schedule in schedules(batch=3).items()}
    reference = results.pop("one frame at a time")
    assert set(reference) == set(LENGTHS)
    for predictions in results.values():
        assert set(predictions) == set(LENGTHS)
        for video_id, expected in reference.items():
            np.testing.assert_allclose(predictions[video_id].landmarks, expected.landmarks, atol=1e-4, rtol=0)
            np.testing.assert_array_equal(predictions[video_id].iterations, expected.iterations)


def recorded_batches(model) -> list[int]:
    """The batch size of every call of the model from now on."""
    sizes, forward = [], model.forward
    model.forward = lambda images, **options: (sizes.append(len(images)), forward(images, **options))[1]
    return sizes


def test_equal_length_batching_batches_only_videos_of_equal_length(videos):
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=1)  # one evaluation per call: calls are frames
    sizes = recorded_batches(model)
    predicted = list(predict_equal_length(model, decoded_streams(videos), batch=2, warm_start=False))
    # length 4: a+b in lockstep then c alone; length 2: d+f; length 5: e alone
    assert sorted(sizes) == sorted([2] * 4 + [1] * 4 + [2] * 2 + [1] * 5)
    assert sum(sizes) == sum(LENGTHS.values()) == sum(len(p.landmarks) for p in predicted)


def test_counted_batch_fill_matches_the_model_calls_of_each_schedule(videos):
    lengths = np.array(list(LENGTHS.values()))
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=1)
    sizes = recorded_batches(model)
    list(schedules(batch=2)["slot scheduler, 2 slots"](model, decoded_streams(videos), warm_start=False))
    assert len(sizes) == slot_calls(lengths, 2)
    fill = batch_fill(lengths, 2)
    assert fill["slot"] == pytest.approx(lengths.sum() / (len(sizes) * 2))
    assert fill["equal-length"] == pytest.approx(lengths.sum() / ((4 * 2 + 2 * 1 + 5 * 1) * 2))


def test_a_schedule_runs_on_its_thread_count_and_leaves_the_callers_alone():
    before, seen = torch.get_num_threads(), []
    on_threads(before + 1, lambda: seen.append(torch.get_num_threads()))()
    assert seen == [before + 1] and torch.get_num_threads() == before

    def fails():
        raise RuntimeError("model failed")

    with pytest.raises(RuntimeError, match="model failed"):
        on_threads(before + 1, fails)()
    assert torch.get_num_threads() == before


def test_results_name_a_checkpoint_relative_to_the_repository(tmp_path):
    from benchmarks.common import REPO, model_for, repo_relative
    from wflwv.models import create_model, load_config, save_checkpoint

    assert repo_relative(REPO / "runs" / "demo" / "ldeq" / "checkpoint.pth.tar") == "runs/demo/ldeq/checkpoint.pth.tar"
    save_checkpoint(tmp_path / "model.pth.tar", create_model(load_config("ldeq_demo")))
    described = model_for("ldeq_demo", tmp_path / "model.pth.tar", "cpu")[1]
    assert described == "trained weights from model.pth.tar (outside the repository)"


def test_a_rerun_of_one_suite_replaces_its_earlier_line_in_the_results_header():
    from benchmarks.run_all import without_earlier_run

    header = ["# results", "- CPU: first machine",
              "- then `python -m benchmarks.run_all --only geometry` on day 1, on this machine:", "  - CPU: second machine",
              "- then `python -m benchmarks.run_all --only rwr` on day 1, on this machine:", "  - CPU: second machine"]
    kept = without_earlier_run(header, "python -m benchmarks.run_all --only geometry")
    assert kept == header[:2] + header[4:]
