import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import BUILD_FRAMES, copy_build, kill_wflwv_when, redone_items, run_cli, stage_rows
from wflwv import io
from wflwv.data.videoset import VideoSet
from wflwv.errors import WflwvError
from wflwv.export import export, verify
from wflwv.data.videoset import variance_path
from wflwv.metrics import face_area
from wflwv.schemes import convert
from wflwv.split import split




@pytest.fixture
def build(labelled_build, tmp_path):
    return copy_build(labelled_build, tmp_path / "build", "videos", "bboxes", "landmarks", "variance")


def test_split_takes_the_highest_scores_as_hard(build):
    videos = VideoSet(build)
    table = split(build, 1)
    scores = {}
    for video_id in videos.ids():
        variance, landmarks = np.load(variance_path(build, video_id)), videos.load_landmarks(video_id)
        scores[video_id] = np.mean([variance[n].mean() / face_area(landmarks[n]) for n in range(len(variance))])
    ranked = sorted(scores, key=scores.get, reverse=True)
    assert videos.ids("hard") == ranked[:1] and videos.ids("easy") == ranked[-1:]
    saved = pd.read_parquet(build / "split_scores.parquet")
    assert list(saved["id"]) == ranked == list(table["id"])
    assert np.allclose(saved["score"], [scores[i] for i in ranked], rtol=1e-5)
    assert list(saved["rank"]) == [1, 2, 3, 4] and list(saved["split"]) == ["hard", "", "", "easy"]
    split(build, 2)
    assert videos.ids("hard") == ranked[:2] and videos.ids("easy") == ranked[::-1][:2]


def test_split_refuses_more_than_half_the_videos_and_unlabelled_ones(build):
    with pytest.raises(WflwvError, match="cannot take 3 hard and 3 easy videos from 4"):
        split(build, 3)
    variance_path(build, "hard0001").unlink()
    with pytest.raises(WflwvError, match="hard0001.npy: no such variance file"):
        split(build, 1)


def test_split_leaves_out_videos_that_an_earlier_stage_did_not_label(build):
    VideoSet(build).landmarks_path("hard0001").unlink()  # as when its boxes failed
    table = split(build, 1)
    assert "hard0001" not in set(table["id"]) and len(table) == 3
    with pytest.raises(WflwvError, match="from 3 labelled"):
        split(build, 2)


def test_export_then_verify_passes_and_the_cli_agrees(build, tmp_path):
    split(build, 2)
    out = tmp_path / "WFLW_V"
    assert export(build, out) == {"hard": 2, "easy": 2}
    for video_id in VideoSet(build).ids():
        for folder, suffix in (("videos", "mp4"), ("landmarks", "npy"), ("bboxes", "npy")):
            assert (out / folder / f"{video_id}.{suffix}").read_bytes() == (build / folder / f"{video_id}.{suffix}").read_bytes()
    result = verify(out)
    assert result.problems == []
    assert result.videos == {"hard": 2, "easy": 2} and result.frames == {"hard": 2 * BUILD_FRAMES, "easy": 2 * BUILD_FRAMES}
    cli = run_cli("verify", str(out))
    assert cli.returncode == 0 and cli.stdout.strip() == f"{out}: hard 2 videos ({2 * BUILD_FRAMES} frames), easy 2 videos ({2 * BUILD_FRAMES} frames); 0 problems"


def test_verify_names_every_broken_file(build, tmp_path):
    split(build, 2)
    out = tmp_path / "WFLW_V"
    export(build, out)
    videos = VideoSet(out)
    hard, easy = videos.ids("hard"), videos.ids("easy")
    truncated = videos.video_path(hard[0])
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    io.save_npy(videos.landmarks_path(hard[1]), convert(videos.load_landmarks(hard[1]), "wflw98", "ibug68"))
    videos.boxes_path(easy[0]).unlink()
    io.save_npy(videos.landmarks_path(easy[1]), videos.load_landmarks(easy[1])[:-1])

    problems = [str(problem) for problem in verify(out).problems]
    assert problems == [
        f"{truncated}: truncated or corrupt mp4 (ffmpeg: Invalid data found when processing input)",
        f"{videos.boxes_path(easy[0])}: no such boxes file",
        f"{videos.landmarks_path(easy[1])}: video has {BUILD_FRAMES} frames, landmarks have {BUILD_FRAMES - 1}",
        f"{videos.landmarks_path(hard[1])}: landmarks have 68 points, the set's other videos have 98 (one point scheme per set)",
    ]
    cli = run_cli("verify", str(out))
    assert cli.returncode == 1
    assert cli.stdout.splitlines()[1:] == problems
    assert cli.stdout.splitlines()[0].endswith("; 4 problems")


def test_verify_reports_missing_lists_and_ids_listed_twice(build, tmp_path):
    videos = VideoSet(build)
    videos.write_split("hard", ["hard0000", "easy0000"])
    result = verify(build)
    assert [str(p) for p in result.problems] == [f"{videos.split_path('easy')}: no such ID list for split 'easy'"]
    videos.write_split("easy", ["easy0000"])
    assert [str(p) for p in verify(build).problems] == [f"{videos.split_path('easy')}: easy0000 is also listed in hard_video_IDs.txt"]
    with pytest.raises(WflwvError, match="easy0000 is listed as hard and as easy"):
        export(build, tmp_path / "out")


def many_videos(build, labelled_build, count: int) -> list[str]:
    """`count` copies of one labelled video of the tiny world, each with its own noisy variance: enough
    items that a kill lands in the middle of a stage's work."""
    source, target = VideoSet(labelled_build), VideoSet(build)
    rng = np.random.default_rng(0)
    ids = [f"v{index:03d}" for index in range(count)]
    for video_id in ids:
        for path_of in (VideoSet.landmarks_path, VideoSet.boxes_path, VideoSet.video_path):
            io.copy_file(path_of(source, "hard0000"), path_of(target, video_id))
        io.save_npy(variance_path(build, video_id), rng.uniform(1, 2, (BUILD_FRAMES, 98)).astype(np.float32))
    return ids


def test_split_killed_then_one_variance_changed_rescores_exactly_the_affected_videos(labelled_build, tmp_path):
    build = tmp_path / "build"
    ids = many_videos(build, labelled_build, 150)
    stage = build / "stages" / "split"
    kill_wflwv_when(lambda: len(stage_rows(stage)) > 0, "split", "--build", build, "--k", 10)
    finished = stage_rows(stage)
    assert 0 < len(finished) < len(ids)
    changed = sorted(finished)[0]
    io.save_npy(variance_path(build, changed), np.full((BUILD_FRAMES, 98), 50.0, np.float32))

    table = split(build, 10)
    assert redone_items(stage, finished) == set(ids) - set(finished) | {changed}
    assert table["id"][0] == changed and VideoSet(build).ids("hard")[0] == changed  # its new score counts


def test_export_killed_then_one_boxes_file_changed_copies_exactly_the_affected_videos(labelled_build, tmp_path):
    build, out = tmp_path / "build", tmp_path / "WFLW_V"
    ids = many_videos(build, labelled_build, 40)
    VideoSet(build).write_split("hard", ids[:20])
    VideoSet(build).write_split("easy", ids[20:])
    stage = build / "stages" / "export"
    kill_wflwv_when(lambda: len(stage_rows(stage)) > 0, "export", "--build", build, "--out", out)
    finished = stage_rows(stage)
    assert 0 < len(finished) < len(ids)
    changed = sorted(finished)[0]
    io.save_npy(VideoSet(build).boxes_path(changed), VideoSet(build).load_boxes(changed) + 1)
    leftover = out / "videos" / f"{io.PARTIAL_PREFIX}{changed}.mp4.k3j9.mp4"  # as a kill while copying leaves
    leftover.write_bytes(b"half a video")

    assert export(build, out) == {"hard": 20, "easy": 20}
    assert redone_items(stage, finished) == set(ids) - set(finished) | {changed}
    assert np.array_equal(VideoSet(out).load_boxes(changed), VideoSet(build).load_boxes(changed))
    assert not leftover.exists() and verify(out).problems == []


def test_export_into_a_deleted_folder_writes_every_video_again(build, tmp_path):
    split(build, 2)
    out = tmp_path / "WFLW_V"
    export(build, out)
    shutil.rmtree(out)
    assert export(build, out) == {"hard": 2, "easy": 2}  # the stage's rows say done, but OUT is gone
    assert verify(out).problems == [] and len(VideoSet(out).ids()) == 4
    VideoSet(out).landmarks_path(VideoSet(out).ids()[0]).unlink()
    export(build, out)
    assert verify(out).problems == []
