import argparse

import numpy as np
import pytest
import torch

from tests.test_inference import predict
from wflwv import tuning
from wflwv.models import load_config
from wflwv.models.ldeq import LDEQ

IDS = ("c", "b", "e")  # 12 frames; a video ends and another takes its slot


def paper_geometry_ldeq() -> LDEQ:
    """The paper's geometry (256x256 crops, 64x64 heatmaps) at small widths, so that the tests stay fast."""
    args = load_config("ldeq_paper")["args"] | {"injection_width": 8, "cell_base_width": 8, "cell_width_increment": 2, "cell_softargmax_beta": 0.1}
    torch.manual_seed(0)
    return LDEQ(argparse.Namespace(**args)).eval()


def test_the_chosen_settings_give_the_landmarks_of_contiguous_weights_one_frame_at_a_time():
    model = paper_geometry_ldeq()
    choices = tuning.choose(model, batches=(1, 2, 4), threads=(1,))
    assert choices.batch in (1, 2, 4) and choices.threads == 1 and choices.frames_per_second > 0
    reference = predict(model, IDS, slots=1, max_iters=2, channels_last=False, prefetch=False)
    runs = {(choices.channels_last, choices.batch), (True, 2), (False, 2)}  # the chosen, and either layout batched
    for channels_last, batch in runs:
        found = predict(tuning.apply(model, tuning.RunChoices(channels_last, batch, 1, False, 0.0)), IDS, slots=batch, max_iters=2, channels_last=channels_last)
        for video_id, expected in reference.items():
            np.testing.assert_allclose(found[video_id].landmarks, expected.landmarks, atol=1e-3, rtol=0)  # pixels of 256x256 crops: float rounding
            np.testing.assert_array_equal(found[video_id].iterations, expected.iterations)


def test_the_fastest_measured_candidate_is_chosen_and_kept(monkeypatch):
    per_frame = {1: 1.0, 2: 0.5, 4: 0.8, 8: 0.25, 16: 0.3}  # seconds of a frame with channels-last; batch 4 gains nothing over 2, batch 8 does
    measured = []

    def timings(calls: dict, rounds: int) -> dict:
        measured.extend(calls)
        return {c: c.batch * per_frame[c.batch] * (1 if c.channels_last else 1.5) for c in calls}

    monkeypatch.setattr(tuning, "best_seconds", timings)
    monkeypatch.setattr(tuning, "_CHOSEN", {})
    model = paper_geometry_ldeq()
    choices = tuning.choose(model, batches=(1, 2, 4, 8, 16, 32), threads=(1,), max_call_s=4.0)
    assert (choices.channels_last, choices.batch, choices.threads, choices.compiled) == (True, 8, 1, False)
    assert choices.frames_per_second == pytest.approx(4.0 * tuning.CLIP_FRAMES)  # frames of the clip per slot
    assert max(c.batch for c in measured) == 16  # a call of batch 16 took 4.8 s, over max_call_s: 32 is not tried
    monkeypatch.setattr(tuning, "best_seconds", None)  # measured once per architecture, device and candidates
    assert tuning.choose(paper_geometry_ldeq(), batches=(1, 2, 4, 8, 16, 32), threads=(1,), max_call_s=4.0) is choices


def test_a_more_complex_candidate_is_kept_only_when_clearly_faster():
    def candidate(batch, channels_last=False, threads=1):
        return tuning.Candidate(channels_last, batch, threads)

    noise = {candidate(1): 10.0, candidate(2): 10.2, candidate(1, True): 10.1, candidate(1, threads=2): 10.25}  # within 3%
    assert tuning.clearly_fastest(noise) == candidate(1)
    gain = noise | {candidate(4): 10.5, candidate(8, True): 14.0, candidate(16, True): 14.1}  # 4 is 5% faster, 8 far faster, 16 not clearly
    assert tuning.clearly_fastest(gain) == candidate(8, True)
    assert tuning.clearly_fastest(gain | {candidate(32): 9.0}) == candidate(8, True)  # a slower larger batch is never kept


def test_threads_are_restored_after_a_measurement():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tuning.choose(paper_geometry_ldeq(), batches=(1,), threads=(1,), cap=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_no_batch_above_the_number_of_streams_is_tried():
    assert tuning.batches_up_to(24) == (1, 2, 4, 8, 16, 24)
    assert tuning.batches_up_to(1) == (1,) and tuning.batches_up_to(8) == (1, 2, 4, 8)
    assert tuning.batches_up_to(1000) == tuning.BATCHES


def test_the_reader_thread_runs_only_for_a_model_fast_enough_to_wait_for_its_frames():
    demo_like, paper_like = (tuning.RunChoices(True, 32, 2, False, fps) for fps in (700.0, 40.0))  # 1.4 ms and 25 ms a frame
    assert demo_like.prefetch and not paper_like.prefetch
    assert "no reader thread" in paper_like.describe() and "no reader thread" not in demo_like.describe()
