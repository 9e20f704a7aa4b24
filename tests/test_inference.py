import argparse
import itertools

import numpy as np
import pytest
import torch

from wflwv.data.crop import box_to_affine, crop, crops_to_tensor, invert_affine, transform_points
from wflwv.errors import WflwvError
from wflwv.inference import VideoStream, predict_frames, predict_videos
from wflwv.models import load_config
from wflwv.models.ldeq import LDEQ

LENGTHS = {"a": 3, "b": 1, "c": 6, "d": 2, "e": 5, "f": 4}


def tiny_ldeq(**overrides) -> LDEQ:
    # beta 0.1 keeps the untrained cell a contraction, so solves stop on the tolerance as a trained model's do
    args = {**load_config("ldeq_demo")["args"], "injection_width": 8, "cell_base_width": 8, "cell_width_increment": 2, "cell_softargmax_beta": 0.1, **overrides}
    torch.manual_seed(0)
    return LDEQ(argparse.Namespace(**args)).eval()


def video(video_id: str, length: int, shift=(0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Random frames (length, 48, 64, 3) and jittering face boxes, both moved by `shift` pixels."""
    rng = np.random.default_rng(sum(map(ord, video_id)))
    frames = rng.integers(0, 256, (length, 48, 64, 3), dtype=np.uint8)
    corners = rng.uniform((4, 4), (24, 12), (length, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(20, 30, (length, 1))], axis=1)
    dx, dy = shift
    moved = np.zeros((length, 48 + dy, 64 + dx, 3), dtype=np.uint8)
    moved[:, dy:, dx:] = frames
    return moved, boxes + (dx, dy, dx, dy)


def streams(ids=tuple(LENGTHS), shift=(0, 0)):
    for video_id in ids:
        frames, boxes = video(video_id, LENGTHS[video_id], shift)
        yield VideoStream(video_id, (frame for frame in frames), boxes)  # frames as a lazy iterator


def predict(model, ids=tuple(LENGTHS), shift=(0, 0), **options):
    return {p.id: p for p in predict_videos(model, streams(ids, shift), **options)}


def by_hand(model, video_id: str, caps: list[int], warm_start: bool) -> np.ndarray:
    """RwR or cold start one frame at a time with the model and the crop functions directly."""
    frames, boxes = video(video_id, LENGTHS[video_id])
    landmarks, z_star = [], None
    with torch.no_grad():
        for frame, box, cap in zip(frames, boxes, caps):
            affine = box_to_affine(box, size=64)
            output = model(crops_to_tensor(crop(frame, affine, 64)[None]), z0=z_star if warm_start else None, max_iters=cap)
            z_star = output.z_star
            landmarks.append(transform_points(output.landmarks[0].numpy() * 64, invert_affine(affine)))
    return np.stack(landmarks)


@pytest.mark.parametrize("warm_start", [True, False])
def test_slot_scheduler_matches_one_frame_at_a_time(warm_start):
    model = tiny_ldeq()
    reference = predict(model, slots=1, warm_start=warm_start, max_iters=2)
    batched = predict(model, slots=4, warm_start=warm_start, max_iters=2)
    assert set(batched) == set(reference) == set(LENGTHS)
    for video_id, expected in reference.items():
        assert batched[video_id].landmarks.shape == (LENGTHS[video_id], 98, 2)
        np.testing.assert_allclose(batched[video_id].landmarks, expected.landmarks, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(batched[video_id].iterations, expected.iterations)
        np.testing.assert_allclose(batched[video_id].residuals, expected.residuals, atol=1e-5, rtol=0)
    first_frames = [p.iterations[0] for p in reference.values()]
    assert warm_start == (max(first_frames) > 2)  # the first frames' full solves do run past the cap


def test_warm_start_from_the_previous_z_star_as_computed_by_hand():
    model = tiny_ldeq()
    caps = [6, 2, 2, 2, 2, 2]
    predicted = predict(model, ids=["c"], max_iters=2)["c"]
    np.testing.assert_allclose(predicted.landmarks, by_hand(model, "c", caps, warm_start=True), atol=1e-4, rtol=0)
    assert not np.allclose(predicted.landmarks, by_hand(model, "c", caps, warm_start=False), atol=1e-2)


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_warm_start_with_cap_k_spends_exactly_k_iterations_after_the_first_frame(cap):
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=5)  # never converged: every solve runs to its cap
    for prediction in predict(model, slots=3, max_iters=cap).values():
        assert prediction.iterations.tolist() == [5] + [cap] * (LENGTHS[prediction.id] - 1)
    for prediction in predict(model, slots=3, max_iters=cap, first_frame_max_iters=cap).values():
        assert prediction.iterations.tolist() == [cap] * LENGTHS[prediction.id]  # the release's schedule


def test_the_adaptive_rule_stops_after_one_iteration_where_the_residual_is_below_its_tolerance():
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=5)  # no tolerance of its own: the rule's decides
    one = predict(model, max_iters=1, first_frame_max_iters=1)
    for video_id, prediction in predict(model, max_iters=2, tol=1e9).items():
        assert prediction.iterations.tolist() == [1] * LENGTHS[video_id]  # every frame meets the tolerance, the first too
        np.testing.assert_allclose(prediction.landmarks, one[video_id].landmarks, atol=1e-5, rtol=0)
    seen = set()
    for tol in (0.01, 0.03, 0.09):
        for video_id, prediction in predict(model, max_iters=2, tol=tol).items():
            frames, boxes = video(video_id, LENGTHS[video_id])
            z_star = None
            for index, (frame, box) in enumerate(zip(frames, boxes)):
                image = crops_to_tensor(crop(frame, box_to_affine(box, size=64), 64)[None])
                with torch.no_grad():
                    first = model(image, z0=z_star, max_iters=1)
                    z_star = model(image, z0=z_star, max_iters=int(prediction.iterations[index])).z_star
                if index:  # one iteration exactly where the first one's residual is below the tolerance
                    assert prediction.iterations[index] == (1 if first.residual.item() < tol else 2)
                    seen.add(int(prediction.iterations[index]))
            np.testing.assert_allclose(prediction.landmarks, by_hand(model, video_id, prediction.iterations.tolist(), warm_start=True), atol=1e-4, rtol=0)
    assert seen == {1, 2}


def test_cold_start_solves_every_frame_from_zero():
    model = tiny_ldeq(rel_diff_target=0.0, max_iters=4)
    predicted = predict(model, slots=3, warm_start=False)
    for video_id, prediction in predicted.items():
        assert prediction.iterations.tolist() == [4] * LENGTHS[video_id]
        np.testing.assert_allclose(prediction.landmarks, by_hand(model, video_id, [4] * LENGTHS[video_id], warm_start=False), atol=1e-4, rtol=0)


@pytest.mark.parametrize("slots", [1, 2])
def test_a_slots_state_never_leaks_into_the_next_video(slots):
    model = tiny_ldeq()
    alone = predict(model, ids=["e"], slots=slots, max_iters=2)["e"]
    after_others = predict(model, ids=["c", "a", "e"], slots=slots, max_iters=2)["e"]
    np.testing.assert_allclose(after_others.landmarks, alone.landmarks, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(after_others.iterations, alone.iterations)


def test_moving_frames_and_boxes_together_moves_the_landmarks_by_as_much():
    model = tiny_ldeq()
    still, moved = predict(model, max_iters=2), predict(model, shift=(7, 3), max_iters=2)
    for video_id in LENGTHS:
        np.testing.assert_allclose(moved[video_id].landmarks, still[video_id].landmarks + (7, 3), atol=1e-4, rtol=0)


def bad_stream(problem: str) -> VideoStream:
    frames, boxes = video("a", 3)
    if problem == "fewer boxes":
        boxes = boxes[:2]
    elif problem == "more boxes":
        boxes = np.concatenate([boxes, boxes[:1]])
    elif problem == "box shape":
        boxes = boxes[:, :3]
    elif problem == "float frames":
        frames = frames.astype(np.float32)
    elif problem == "empty box":
        boxes[1, 2:] = boxes[1, :2]
    return VideoStream("a", iter(frames), boxes)


@pytest.mark.parametrize(
    "problem, message",
    [
        ("fewer boxes", "more frames than its 2 boxes"),
        ("more boxes", "video has 3 frames but 4 boxes"),
        ("box shape", r"boxes have shape \(3, 3\), expected \(frames, >=4\)"),
        ("float frames", r"frame 0 is float32 \(48, 64, 3\), expected RGB uint8"),
        ("empty box", "frame 1: degenerate box"),
    ],
)
def test_bad_videos_are_refused_naming_the_video(problem, message):
    with pytest.raises(WflwvError, match=message) as error:
        list(predict_videos(tiny_ldeq(), [bad_stream(problem)]))
    assert str(error.value).startswith("a: ")


def test_boxes_may_be_lazy_and_each_frame_comes_out_as_it_is_solved():
    model = tiny_ldeq()
    frames, boxes = video("a", 4)
    whole = next(predict_videos(model, [VideoStream("a", iter(frames), boxes)], max_iters=2))
    solved = list(predict_frames(model, [VideoStream("a", iter(frames), iter(boxes))], max_iters=2))
    assert [number for number, _ in solved] == [0] * 5 and solved[-1][1] is None
    assert [frame.index for _, frame in solved[:-1]] == [0, 1, 2, 3]
    np.testing.assert_allclose(np.stack([frame.landmarks for _, frame in solved[:-1]]), whole.landmarks, atol=1e-5, rtol=0)
    with pytest.raises(WflwvError, match="a: video has more frames than its boxes"):
        list(predict_frames(model, [VideoStream("a", iter(frames), iter(boxes[:3]))]))


def test_either_layout_and_prefetching_give_the_same_landmarks():
    model = tiny_ldeq()
    contiguous = predict(model, slots=3, max_iters=2, prefetch=False)  # the default layout
    weight = model.deq_layer.cell.hourglass.same1.conv.weight
    assert weight.is_contiguous()
    channels_last = predict(model, slots=3, max_iters=2, channels_last=True)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    prefetched = predict(model, slots=3, max_iters=2)
    assert weight.is_contiguous()  # back to contiguous, as asked by default
    for video_id, expected in contiguous.items():
        np.testing.assert_array_equal(prefetched[video_id].landmarks, expected.landmarks)
        np.testing.assert_allclose(channels_last[video_id].landmarks, expected.landmarks, atol=1e-4, rtol=0)
        np.testing.assert_array_equal(channels_last[video_id].iterations, expected.iterations)


def test_a_bad_frame_read_ahead_is_reported_at_its_turn():
    frames, boxes = video("a", 4)
    bad = [*frames[:2], frames[2][..., 0]]  # the third frame is grey, not RGB
    solved = predict_frames(tiny_ldeq(), [VideoStream("a", iter(bad), boxes[:3])], slots=1, max_iters=2)
    assert [frame.index for _, frame in itertools.islice(solved, 2)] == [0, 1]
    with pytest.raises(WflwvError, match="a: frame 2 is uint8"):
        next(solved)


def test_the_caller_never_runs_in_inference_mode_between_frames():
    seen = []
    for _ in predict_frames(tiny_ldeq(), streams(("a", "c")), slots=2, max_iters=2):
        seen.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled()))
    assert seen and set(seen) == {(True, False)}
