import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import wflwv
from conftest import BUILD_FRAMES, copy_build, kill_wflwv_when, make_member, redone_items, stage_rows
from wflwv import io
from wflwv.data.video import read_video
from wflwv.data.videoset import VideoSet, variance_path
from wflwv.errors import WflwvError
from wflwv.inference import VideoStream, predict_videos
from wflwv.label import ensemble_frames, find_members, label, load_members, member_name, read_corrections, resample_heatmaps
from wflwv.models import load_checkpoint
from wflwv.models.heatmaps import soft_argmax
from wflwv.pipeline.stage import Executor
from wflwv.tuning import RunChoices, apply

VIDEO = "easy0000"


def frames_and_boxes(build, video_id=VIDEO, count=6):
    videos = VideoSet(build)
    return read_video(videos.video_path(video_id))[:count], videos.load_boxes(video_id)[:count]


def run_ensemble(checkpoints, frames, boxes, keep=None):
    models = load_members(tuple(checkpoints), "cpu")
    keep = np.ones((len(models), len(frames)), dtype=bool) if keep is None else keep
    return ensemble_frames(models, frames, boxes, keep)[:2]


def test_one_member_labels_are_its_predictions(unlabelled_build, members):
    frames, boxes = frames_and_boxes(unlabelled_build)
    labels, variance = run_ensemble(members[:1], frames, boxes)
    model = load_members(tuple(members[:1]), "cpu")[0]
    prediction = next(predict_videos(model, [VideoStream(VIDEO, frames, boxes)], warm_start=False))
    assert np.allclose(labels, prediction.landmarks, atol=1e-3)
    assert np.all(variance == 0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_members_in_a_tuned_layout_and_thread_count_label_as_contiguous_ones(unlabelled_build, members, channels_last):
    frames, boxes = frames_and_boxes(unlabelled_build)
    keep = np.ones((len(members), len(frames)), dtype=bool)
    models = [load_checkpoint(member)[0].eval() for member in members]  # fresh copies: load_members' are shared
    plain, plain_variance, _ = ensemble_frames(models, frames, boxes, keep)
    choices = [RunChoices(channels_last, len(frames), 1, False, 0.0)] * len(models)
    for model, choice in zip(models, choices):
        apply(model, choice)
    tuned, tuned_variance, _ = ensemble_frames(models, frames, boxes, keep, choices=choices)
    np.testing.assert_allclose(tuned, plain, atol=1e-3, rtol=0)  # frame pixels: float rounding
    np.testing.assert_allclose(tuned_variance, plain_variance, atol=1e-3, rtol=1e-3)


def test_identical_members_average_to_each_member(unlabelled_build, members, tmp_path):
    twin = tmp_path / "twin.pth.tar"
    shutil.copyfile(members[0], twin)
    frames, boxes = frames_and_boxes(unlabelled_build)
    alone, _ = run_ensemble(members[:1], frames, boxes)
    labels, variance = run_ensemble([members[0], twin], frames, boxes)
    assert np.allclose(labels, alone, atol=1e-4)
    assert np.allclose(variance, 0, atol=1e-8)


def test_different_members_disagree_and_labels_are_their_mean(labelled_build, members):
    frames, boxes = frames_and_boxes(labelled_build)
    each = [run_ensemble([member], frames, boxes)[0] for member in members]
    labels = np.load(VideoSet(labelled_build).landmarks_path(VIDEO))[: len(frames)]
    variance = np.load(variance_path(labelled_build, VIDEO))[: len(frames)]
    assert np.allclose(labels, np.mean(each, axis=0), atol=1e-2)  # soft-argmax is linear in the map
    half_distance_squared = np.sum((each[0] - each[1]) ** 2, axis=-1) / 4  # two members: each is this far from their mean
    assert np.allclose(variance, half_distance_squared, rtol=1e-3, atol=1e-4)
    assert (variance > 0).all()


def gaussian_maps(centres, size: int, sigma: float) -> torch.Tensor:
    """(1, N, size, size) normalised Gaussians at centres (N, 2) in [0, 1] crop units (pixel i at i / size)."""
    grid = torch.arange(size, dtype=torch.float64) / size
    x = torch.exp(-((grid[None, :] - centres[:, :1]) ** 2) / (2 * sigma**2))
    y = torch.exp(-((grid[None, :] - centres[:, 1:]) ** 2) / (2 * sigma**2))
    maps = y[:, :, None] * x[:, None, :]
    return (maps / maps.sum(dim=(1, 2), keepdim=True))[None]


@pytest.mark.parametrize("source, target, tolerance", [(16, 64, 1e-9), (16, 32, 1e-9), (32, 48, 2e-3), (64, 16, 1e-4), (48, 32, 1e-4)])
def test_resampling_keeps_soft_argmax_points(source, target, tolerance):
    centres = torch.tensor([[0.5, 0.5], [0.23, 0.71], [0.8, 0.12], [0.61, 0.4]], dtype=torch.float64)
    maps = gaussian_maps(centres, source, sigma=0.05)
    resampled = resample_heatmaps(maps, target)
    assert resampled.shape == (1, 4, target, target)
    assert torch.allclose(resampled.sum(dim=(2, 3)), torch.ones(1, 4, dtype=torch.float64))
    assert torch.allclose(soft_argmax(resampled), soft_argmax(maps), atol=tolerance)


def test_members_with_other_crop_and_heatmap_sizes_share_one_frame(unlabelled_build, members, tmp_path):
    large = make_member(tmp_path / "large.pth.tar", seed=5, im_size=128, heatmap_size=32)
    frames, boxes = frames_and_boxes(unlabelled_build, count=3)
    each = [run_ensemble([member], frames, boxes)[0] for member in (members[0], large)]
    labels, variance = run_ensemble([members[0], large], frames, boxes)
    assert np.allclose(labels, np.mean(each, axis=0), atol=1e-2)
    assert np.allclose(variance, np.sum((each[0] - each[1]) ** 2, axis=-1) / 4, rtol=1e-3, atol=1e-4)


def test_label_writes_landmarks_and_variance_for_every_video(labelled_build):
    videos = VideoSet(labelled_build)
    manifest = json.loads((labelled_build / "stages" / "label" / "rows" / f"{VIDEO}.json").read_text())
    assert manifest["status"] == "done" and manifest["frames"] == BUILD_FRAMES and manifest["members"] == 2
    for video_id in videos.ids():
        item = videos.load(video_id)  # shapes, finite values and frame counts checked
        assert item.landmarks.shape == (BUILD_FRAMES, 98, 2)
        assert np.load(variance_path(labelled_build, video_id)).shape == (BUILD_FRAMES, 98)
        x1, y1, x2, y2 = item.boxes[:, :4].T  # random members put their points near the crop's centre
        assert (item.landmarks[..., 0] > x1[:, None] - (x2 - x1)[:, None]).all() and (item.landmarks[..., 0] < x2[:, None] + (x2 - x1)[:, None]).all()


def write_corrections(path, *lines):
    path.write_text("video_id,member,first_frame,last_frame\n" + "".join(line + "\n" for line in lines))
    return path


def test_corrections_drop_a_member_and_relabel_only_their_video(labelled_build, members, tmp_path):
    build = copy_build(labelled_build, tmp_path / "build", "videos", "bboxes", "landmarks", "variance", "stages")
    videos = VideoSet(build)
    before = {video_id: videos.landmarks_path(video_id).stat().st_mtime_ns for video_id in videos.ids()}
    corrections = write_corrections(tmp_path / "corrections.csv", f"{VIDEO},m1,3,10")
    manifest = label(build, members, corrections, batch_size=8).set_index("id")
    assert manifest.loc[VIDEO, "corrected_frames"] == 8
    others = [video_id for video_id in videos.ids() if video_id != VIDEO]
    assert all(videos.landmarks_path(video_id).stat().st_mtime_ns == before[video_id] for video_id in others)

    frames, boxes = frames_and_boxes(build, count=BUILD_FRAMES)
    alone, _ = run_ensemble(members[:1], frames, boxes)
    labels, variance = videos.load_landmarks(VIDEO), np.load(variance_path(build, VIDEO))
    reference = np.load(VideoSet(labelled_build).landmarks_path(VIDEO))
    assert np.allclose(labels[3:11], alone[3:11], atol=1e-3) and np.all(variance[3:11] == 0)
    assert np.allclose(labels[:3], reference[:3], atol=1e-4) and np.allclose(labels[11:], reference[11:], atol=1e-4)

    relabelled = videos.landmarks_path(VIDEO).stat().st_mtime_ns
    label(build, members, corrections, batch_size=8)  # the same corrections: nothing to do
    assert videos.landmarks_path(VIDEO).stat().st_mtime_ns == relabelled
    label(build, members, None, batch_size=8)  # corrections withdrawn: the video is relabelled as it was
    assert np.allclose(videos.load_landmarks(VIDEO), reference, atol=1e-4)


@pytest.mark.parametrize(
    "line, problem",
    [
        (f"{VIDEO},m7,0,3", "line 2: unknown member 'm7' (members: m0, m1)"),
        (f"{VIDEO},m1,12,{BUILD_FRAMES}", f"line 2: frames 12-{BUILD_FRAMES} are out of range: {VIDEO} has frames 0-{BUILD_FRAMES - 1}"),
        (f"{VIDEO},m1,5,2", "line 2: frames 5-2 are out of range"),
        (f"{VIDEO},m1,x,2", "line 2: frames 'x' and '2' are not both integers"),
        (f"{VIDEO},m1,5", "line 2: expected 4 fields"),
        ("nosuchvideo,m1,0,1", "line 2: no video nosuchvideo in"),
        (f'{VIDEO},"m1\n",0,1\n{VIDEO},m1,x,1', "line 4: frames 'x' and '1' are not both integers"),  # a quoted newline: rows and lines differ
        (f'{VIDEO},m1,0,1\n{VIDEO},"m1', "line 3: expected 4 fields (video_id,member,first_frame,last_frame), found 2"),  # an unclosed quote runs to the end
        (f"{VIDEO},m1,0," + "1" * 200_000, "line 2: not CSV (field larger than field limit"),
    ],
)
def test_bad_corrections_name_the_file_and_line(unlabelled_build, members, tmp_path, line, problem):
    corrections = write_corrections(tmp_path / "corrections.csv", line)
    with pytest.raises(WflwvError) as error:
        label(unlabelled_build, members, corrections)
    assert str(error.value).startswith(f"{corrections}: {problem}")


def test_corrections_that_leave_a_frame_without_members_are_refused(unlabelled_build, members, tmp_path):
    corrections = write_corrections(tmp_path / "c.csv", f"{VIDEO},m0,0,5", f"{VIDEO},m1,5,9")
    with pytest.raises(WflwvError, match=f"c.csv: line 3: leaves frame 5 of {VIDEO} with no member"):
        read_corrections(corrections, ["m0", "m1"], lambda video_id: BUILD_FRAMES)
    (tmp_path / "h.csv").write_text("video,member,first,last\n")
    with pytest.raises(WflwvError, match="h.csv: line 1: expected the header video_id,member,first_frame,last_frame"):
        read_corrections(tmp_path / "h.csv", ["m0"], lambda video_id: BUILD_FRAMES)


def test_a_bad_member_checkpoint_is_one_error_before_any_video(unlabelled_build, members, tmp_path):
    broken = tmp_path / "broken.pth.tar"
    broken.write_bytes(b"not a checkpoint")
    build = copy_build(unlabelled_build, tmp_path / "build", "videos", "bboxes")
    with pytest.raises(WflwvError, match="broken.pth.tar: not a PyTorch checkpoint"):
        label(build, [members[0], broken])
    assert not (build / "stages").exists()


def test_members_are_named_by_their_run_folder_or_file(tmp_path, members):
    assert member_name(tmp_path / "unet_s3" / "checkpoint.pth.tar") == "unet_s3"
    assert member_name(tmp_path / "hrnet_s1.pth.tar") == "hrnet_s1"
    runs = tmp_path / "ensemble"
    for name in ("b", "a"):
        (runs / name).mkdir(parents=True)
        shutil.copyfile(members[0], runs / name / "checkpoint.pth.tar")
    assert [member_name(p) for p in find_members([members[1]], runs)] == ["m1", "a", "b"]
    (tmp_path / "m1").mkdir()
    shutil.copyfile(members[0], tmp_path / "m1" / "checkpoint.pth.tar")
    with pytest.raises(WflwvError, match="member name 'm1' is also that of"):
        find_members([members[1], tmp_path / "m1" / "checkpoint.pth.tar"])
    with pytest.raises(WflwvError, match="no ensemble members"):
        find_members([], None)


def test_sigkill_in_the_middle_of_label_then_new_boxes_for_one_video_relabels_exactly_the_affected(labelled_build, members, tmp_path):
    """The issue's acceptance test: kill -9 while labelling, give one finished video new boxes, rerun:
    every output intact, the unfinished videos and the changed one labelled, no other done twice."""
    build = copy_build(labelled_build, tmp_path / "build", "videos", "bboxes")
    ids = VideoSet(build).ids()
    stage = build / "stages" / "label"
    arguments = [argument for member in members for argument in ("--members", member)]
    kill_wflwv_when(lambda: len(stage_rows(stage)) > 0, "label", "--build", build, "--batch-size", 4, *arguments)
    finished = stage_rows(stage)
    assert 0 < len(finished) < len(ids)
    changed = sorted(finished)[0]
    boxes = VideoSet(build).load_boxes(changed)
    io.save_npy(VideoSet(build).boxes_path(changed), boxes + [4, 4, 4, 4])  # the face moved 4 pixels right and down
    written = {video_id: VideoSet(build).landmarks_path(video_id).stat().st_mtime_ns for video_id in finished}

    manifest = label(build, members, batch_size=4)  # the rerun, in this process
    assert list(manifest["status"]) == ["done"] * len(ids)
    assert redone_items(stage, finished) == set(ids) - set(finished) | {changed}
    for video_id in ids:
        if video_id in finished and video_id != changed:  # committed before the kill: neither redone nor rewritten
            assert VideoSet(build).landmarks_path(video_id).stat().st_mtime_ns == written[video_id]
        if video_id == changed:
            assert not np.allclose(VideoSet(build).load_landmarks(video_id), VideoSet(labelled_build).load_landmarks(video_id), atol=1e-3)
            continue
        assert np.allclose(VideoSet(build).load(video_id).landmarks, VideoSet(labelled_build).load_landmarks(video_id), atol=1e-3)
        assert np.allclose(np.load(variance_path(build, video_id)), np.load(variance_path(labelled_build, video_id)), atol=1e-3)


def test_ray_labels_as_this_process_does(labelled_build, members, tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("PYTHONPATH", str(Path(wflwv.__file__).parents[1]))  # Ray's workers import this checkout's wflwv
    build = copy_build(labelled_build, tmp_path / "build", "videos", "bboxes")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        manifest = label(build, members, executor=Executor("ray"), batch_size=8)
    finally:
        ray.shutdown()
    assert list(manifest["status"]) == ["done"] * len(manifest)
    assert not any(worker.endswith(f":{os.getpid()}") for worker in manifest["worker"])
    for video_id in manifest["id"]:
        assert np.allclose(VideoSet(build).load_landmarks(video_id), VideoSet(labelled_build).load_landmarks(video_id), atol=1e-4)
        assert np.allclose(np.load(variance_path(build, video_id)), np.load(variance_path(labelled_build, video_id)), atol=1e-4)
