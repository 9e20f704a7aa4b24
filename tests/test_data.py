import cv2
import numpy as np
import pytest

from wflwv.data.video import read_video
from wflwv.data.videoset import VideoSet, validate_id
from wflwv.data.wflw import (
    ATTRIBUTES,
    PRECROPPED_SPLITS,
    SUBSETS,
    Face,
    WflwStills,
    read_annotations,
    read_precropped,
    write_annotations,
    write_precropped,
)
from wflwv.errors import WflwvError


def random_face(rng: np.random.Generator, image: str = "1--Handshaking/1_Handshaking_1.jpg", attributes=(0, 1, 0, 0, 1, 0)) -> Face:
    landmarks = rng.uniform(0, 500, size=(98, 2))
    box = np.array([*landmarks.min(axis=0), *landmarks.max(axis=0)])
    return Face(landmarks, box, np.array(attributes), image)


def annotation_line(face: Face) -> str:
    numbers = [*face.landmarks.ravel(), *face.box]
    return " ".join([*(f"{x:.6f}" for x in numbers), *(str(a) for a in face.attributes), face.image])


# WFLW annotation files


def test_annotation_line_by_hand(tmp_path):
    coordinates = " ".join(f"{i}.5" for i in range(196))
    path = tmp_path / "list.txt"
    path.write_text(f"{coordinates} 10 20 110 140 1 0 0 1 0 1 7--Cheering/7_Cheering_Cheering_7_16.jpg\n")
    [face] = read_annotations(path)
    assert face.landmarks.shape == (98, 2)
    assert tuple(face.landmarks[0]) == (0.5, 1.5) and tuple(face.landmarks[97]) == (194.5, 195.5)
    assert face.box.tolist() == [10, 20, 110, 140]
    assert face.attributes.tolist() == [1, 0, 0, 1, 0, 1]
    assert face.image == "7--Cheering/7_Cheering_Cheering_7_16.jpg"


def test_annotations_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    faces = [random_face(rng), random_face(rng, image="dir/name with space.jpg", attributes=(1, 1, 1, 1, 1, 1))]
    write_annotations(tmp_path / "list.txt", faces)
    read_back = read_annotations(tmp_path / "list.txt")
    assert len(read_back) == 2
    for face, again in zip(faces, read_back):
        assert np.array_equal(face.landmarks, again.landmarks) and np.array_equal(face.box, again.box)
        assert np.array_equal(face.attributes, again.attributes) and face.image == again.image
    assert len((tmp_path / "list.txt").read_text().splitlines()[0].split()) == 196 + 4 + 6 + 1


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda fields: fields[:150] + fields[-7:], "line 2: 157 fields, expected 196 landmark coordinates"),
        (lambda fields: fields[:-1], "line 2: 206 fields"),
        (lambda fields: fields[:3] + ["12,5"] + fields[4:], r"line 2: value 4 \('12,5'\) is not a number"),
        (lambda fields: fields[:197] + ["nan"] + fields[198:], r"line 2: value 198 \('nan'\) is not finite"),
        (lambda fields: fields[:205] + ["2"] + fields[206:], "line 2: attribute flag blur is 2, expected 0 or 1"),
    ],
)
def test_bad_annotation_lines_name_the_file_and_line(tmp_path, edit, problem):
    rng = np.random.default_rng(1)
    good = annotation_line(random_face(rng))
    path = tmp_path / "list.txt"
    path.write_text(f"{good}\n{' '.join(edit(good.split()))}\n")
    with pytest.raises(WflwvError, match=problem) as error:
        read_annotations(path)
    assert error.value.path == str(path)


def test_face_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        Face(np.zeros((68, 2)), np.zeros(4), np.zeros(6), "a.jpg")


# The official WFLW layout


@pytest.fixture
def stills(tmp_path) -> WflwStills:
    rng = np.random.default_rng(2)
    flags = [(1, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 1), (1, 0, 0, 0, 0, 1)]
    faces = [random_face(rng, image=f"0--Parade/{i}.png", attributes=a) for i, a in enumerate(flags)]
    root = tmp_path / "WFLW"
    for split in ("train", "test"):
        write_annotations(root / "WFLW_annotations/list_98pt_rect_attr_train_test" / f"list_98pt_rect_attr_{split}.txt", faces)
    image = np.zeros((30, 40, 3), np.uint8)
    image[..., 2] = 255  # red in OpenCV's BGR order
    (root / "WFLW_images/0--Parade").mkdir(parents=True)
    for face in faces:
        cv2.imwrite(str(root / "WFLW_images" / face.image), image)
    return WflwStills(root)


def test_subsets_select_faces_by_attribute_flag(stills):
    assert [f.image for f in stills.faces("test")] == ["0--Parade/0.png", "0--Parade/1.png", "0--Parade/2.png"]
    assert [f.image for f in stills.faces("test", "largepose")] == ["0--Parade/0.png", "0--Parade/2.png"]
    assert [f.image for f in stills.faces("train", "blur")] == ["0--Parade/1.png", "0--Parade/2.png"]
    assert stills.faces("test", "makeup") == []


def test_subset_names_match_the_precropped_splits_and_the_flags():
    assert set(SUBSETS.values()) == set(ATTRIBUTES)
    assert PRECROPPED_SPLITS == ("train", "test", "test_largepose", "test_expression", "test_illumination", "test_makeup", "test_occlusion", "test_blur")


def test_load_image_is_rgb(stills):
    image = stills.load_image(stills.faces("test")[0])
    assert image.shape == (30, 40, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [255, 0, 0]


def test_stills_errors_name_the_file(stills):
    face = stills.faces("test")[0]
    stills.image_path(face).unlink()
    with pytest.raises(WflwvError, match="no such image") as error:
        stills.load_image(face)
    assert error.value.path == str(stills.image_path(face))
    stills.image_path(face).write_text("not a png")
    with pytest.raises(WflwvError, match="not a readable image"):
        stills.load_image(face)
    stills.annotation_path("train").unlink()
    with pytest.raises(WflwvError, match="no such annotation file") as error:
        stills.faces("train")
    assert error.value.path == str(stills.annotation_path("train"))
    with pytest.raises(WflwvError, match="unknown WFLW subset 'smile'"):
        stills.faces("test", "smile")
    with pytest.raises(WflwvError, match="unknown WFLW split 'val'"):
        stills.faces("val")


# The pre-cropped WFLW layout


def test_precropped_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    landmarks = rng.uniform(-0.05, 1.05, size=(3, 98, 2))
    names = ["a.png", "b.png", "c.png"]
    write_precropped(tmp_path, "test_blur", names, crops, landmarks)

    text = (tmp_path / "test_blur.txt").read_text().splitlines()
    assert [line.split()[0] for line in text] == names
    assert np.array_equal(np.array([line.split()[1:] for line in text], dtype=np.float64).reshape(3, 98, 2), landmarks)

    read_names, images_dir, read_landmarks = read_precropped(tmp_path, "test_blur")
    assert read_names == names and images_dir == tmp_path / "test_blur"
    assert np.array_equal(read_landmarks, landmarks)
    for name, face_crop in zip(names, crops):
        assert np.array_equal(cv2.cvtColor(cv2.imread(str(images_dir / name)), cv2.COLOR_BGR2RGB), face_crop)


def test_precropped_errors(tmp_path):
    labels = tmp_path / "test.txt"
    labels.write_text("a.png " + " ".join(["0.5"] * 196) + "\nb.png " + " ".join(["0.5"] * 194) + "\n")
    with pytest.raises(WflwvError, match="line 2: 194 numbers after the image name, expected 196") as error:
        read_precropped(tmp_path, "test")
    assert error.value.path == str(labels)
    with pytest.raises(WflwvError, match="no such annotation file"):
        read_precropped(tmp_path, "train")
    with pytest.raises(WflwvError, match="unknown pre-cropped WFLW split 'test_hats'"):
        read_precropped(tmp_path, "test_hats")
    crops = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(WflwvError, match="plain file name"):
        write_precropped(tmp_path, "train", ["sub/a.png"], crops, np.zeros((1, 98, 2)))
    with pytest.raises(WflwvError, match=r"landmarks of shape \(1, 68, 2\)"):
        write_precropped(tmp_path, "train", ["a.png"], crops, np.zeros((1, 68, 2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.txt"]


# The WFLW-V layout


def video_item(n_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = np.full((n_frames, 32, 48, 3), 90, dtype=np.uint8)
    for t in range(n_frames):
        frames[t, 8:16, 2 * t : 2 * t + 8] = 240
    landmarks = rng.uniform(0, 32, size=(n_frames, 98, 2)).astype(np.float32)
    boxes = np.column_stack([landmarks.min(axis=1), landmarks.max(axis=1), rng.uniform(0.9, 1, n_frames)])
    return frames, landmarks, boxes


@pytest.fixture
def videoset(tmp_path) -> VideoSet:
    videos = VideoSet(tmp_path / "WFLW_V")
    for video_id, n_frames in (("b-_X9", 6), ("A1", 5)):
        videos.write(video_id, *video_item(n_frames), fps=25)
    return videos


def test_videoset_round_trip(videoset):
    assert videoset.ids() == ["A1", "b-_X9"]
    frames, landmarks, boxes = video_item(6)
    item = videoset.load("b-_X9")
    assert (item.id, item.n_frames, item.fps, item.frames_path) == ("b-_X9", 6, 25.0, videoset.root / "videos/b-_X9.mp4")
    assert item.landmarks.dtype == np.float32 and np.array_equal(item.landmarks, landmarks)
    assert np.array_equal(item.boxes, boxes)
    assert np.abs(read_video(item.frames_path).astype(int) - frames).mean() < 3
    assert np.array_equal(np.load(videoset.root / "landmarks/b-_X9.npy"), landmarks)
    assert np.load(videoset.root / "bboxes/b-_X9.npy").shape == (6, 5)


def test_split_lists(videoset):
    assert not videoset.has_split("hard")
    videoset.write_split("hard", ["b-_X9", "A1"])
    assert videoset.has_split("hard")
    assert (videoset.root / "hard_video_IDs.txt").read_text() == "b-_X9\nA1\n"
    assert videoset.ids("hard") == ["b-_X9", "A1"]
    with pytest.raises(WflwvError, match="no such ID list for split 'easy'") as error:
        videoset.ids("easy")
    assert error.value.path == str(videoset.root / "easy_video_IDs.txt")
    (videoset.root / "easy_video_IDs.txt").write_text("A1\n\nx/../y\n")
    with pytest.raises(WflwvError, match="line 3: video ID 'x/../y' must be letters, digits"):
        videoset.ids("easy")


def test_ids_skip_files_being_written(videoset):
    (videoset.root / "videos/.A2.mp4.k3j2.mp4").write_bytes(b"")
    assert videoset.ids() == ["A1", "b-_X9"]


@pytest.mark.parametrize(
    "video_id, problem",
    [("", "must be letters"), ("..", "must be letters"), (".hidden", "must be letters"), ("a/b", "must be letters"), ("a\\b", "must be letters"),
     ("a b", "must be letters"), ("a\x00b", "must be letters"), ("a\x1bb", "must be letters"), ('q"onerror="x', "must be letters"),
     ("a<b>", "must be letters"), ("x" * 129, "has 129 characters, at most 128")],
)
def test_validate_id_rejects_unsafe_names(video_id, problem):
    with pytest.raises(WflwvError, match=problem):
        validate_id(video_id)


def test_validate_id_accepts_youtube_ids():
    assert validate_id("-_aZ09xYz1Q") == "-_aZ09xYz1Q"
    assert validate_id("x" * 128) == "x" * 128
    with pytest.raises(WflwvError, match="must be letters"):
        VideoSet("/data").video_path("../../etc/passwd")


@pytest.mark.parametrize(
    "which, array, problem",
    [
        ("landmarks", np.zeros((5, 67, 2)), r"landmarks have shape \(5, 67, 2\), expected \(frames, .*points, 2\)"),
        ("landmarks", np.zeros((5, 98, 2), dtype=np.int64), "landmarks have dtype int64, expected floating point"),
        ("landmarks", np.where(np.arange(5)[:, None, None] == 3, np.inf, np.arange(5 * 98 * 2.0).reshape(5, 98, 2)), "landmarks of frame 3 are infinite"),
        ("landmarks", np.ones((5, 98, 2)), "landmarks of frame 0: points 60 and 72 coincide"),
        ("bboxes", np.ones((5, 3)), r"boxes have shape \(5, 3\), expected \(frames, >=4\)"),
        ("bboxes", np.array([[0, 0, 10, 10]] * 4 + [[0, 0, np.inf, 10]]), "boxes of frame 4 are not finite"),
        ("bboxes", np.array([[0, 0, 10, 10]] * 2 + [[5, 0, 5, 10]] * 3), r"box of frame 2 is empty"),
        ("bboxes", np.array([["a", "b", "c", "d"]] * 5), "boxes have dtype <U1, expected numbers"),
        ("landmarks", np.arange(4 * 98 * 2.0).reshape(4, 98, 2), "video has 5 frames, landmarks have 4"),
        ("bboxes", np.array([[0, 0, 10, 10]] * 6), "video has 5 frames, boxes have 6"),
    ],
)
def test_bad_arrays_name_their_file(videoset, which, array, problem):
    path = videoset.root / which / "A1.npy"
    np.save(path, array)
    with pytest.raises(WflwvError, match=problem) as error:
        videoset.load("A1")
    assert error.value.path == str(path)


def test_missing_and_unreadable_files(videoset):
    (videoset.root / "bboxes/A1.npy").write_text("not numpy")
    with pytest.raises(WflwvError, match="not a readable .npy array") as error:
        videoset.load_boxes("A1")
    assert error.value.path == str(videoset.root / "bboxes/A1.npy")
    (videoset.root / "landmarks/A1.npy").unlink()
    with pytest.raises(WflwvError, match="no such landmarks file"):
        videoset.load("A1")
    (videoset.root / "videos/b-_X9.mp4").write_bytes((videoset.root / "videos/b-_X9.mp4").read_bytes()[:300])
    with pytest.raises(WflwvError, match="truncated or corrupt mp4") as error:
        videoset.load("b-_X9")
    assert error.value.path == str(videoset.root / "videos/b-_X9.mp4")


def test_write_checks_frame_counts_and_keeps_the_old_item(videoset):
    before = {p: p.read_bytes() for p in videoset.root.rglob("*") if p.is_file()}
    frames, landmarks, boxes = video_item(5, seed=9)
    with pytest.raises(WflwvError, match="video has 4 frames, landmarks have 5") as error:
        videoset.write("A1", frames[:4], landmarks, boxes, fps=25)
    assert error.value.path == str(videoset.video_path("A1"))
    with pytest.raises(WflwvError, match="landmarks have 5 frames, boxes have 4"):
        videoset.write("A1", frames, landmarks, boxes[:4], fps=25)
    with pytest.raises(WflwvError, match="landmarks have shape"):
        videoset.write("A1", frames, landmarks[:, :67], boxes, fps=25)
    assert {p: p.read_bytes() for p in videoset.root.rglob("*") if p.is_file()} == before
