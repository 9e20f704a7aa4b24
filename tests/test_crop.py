import numpy as np
import pytest
import torch

from wflwv.data.crop import IMAGENET_MEAN, IMAGENET_STD, box_to_affine, crop, crops_to_tensor, invert_affine, released_box_to_affine, transform_points


def test_box_to_affine_by_hand():
    # Box 100 wide, 50 tall, centred at (150, 100): crop side 120 px of frame -> 240 px of crop, scale 2.
    affine = box_to_affine(np.array([100, 75, 200, 125, 0.99]), size=240)
    assert np.allclose(affine, [[2, 0, 120 - 2 * 150], [0, 2, 120 - 2 * 100]])
    corners = transform_points(np.array([[90.0, 40.0], [210.0, 160.0]]), affine)
    assert np.allclose(corners, [[0, 0], [240, 240]])  # the crop's square spans the box's longer side * 1.2


def test_released_box_to_affine_by_hand():
    # Corners int(v + 0.5): 10, 21, 50, 59; w 41, h 39; centre (10 + 20, 21 + 19); side max(40, 38) * 1.2 = 48 -> 96 px, scale 2.
    affine = released_box_to_affine(np.array([10.4, 20.6, 49.5, 59.2]), size=96)
    assert np.allclose(affine, [[2, 0, 48 - 2 * 30], [0, 2, 48 - 2 * 40]])
    # int() truncates towards zero: -0.7 + 0.5 -> 0, not -1; w 51, centre x 25; side 50 * 1.2 = 60 -> 96 px, scale 1.6
    affine = released_box_to_affine(np.array([-0.7, 20.6, 49.5, 59.2]), size=96)
    assert np.allclose(affine, [[1.6, 0, 48 - 1.6 * 25], [0, 1.6, 48 - 1.6 * 40]])


def test_points_round_trip_through_the_inverse_affine():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 640, size=(5, 98, 2))
    affine = box_to_affine(np.array([210.3, 95.7, 380.1, 300.2]), size=256)
    inverse = invert_affine(affine)
    assert np.allclose(transform_points(transform_points(points, affine), inverse), points)
    assert np.allclose(np.vstack([affine, [0, 0, 1]]) @ np.vstack([inverse, [0, 0, 1]]), np.eye(3))


def test_transform_points_takes_one_affine_per_leading_index():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, size=(3, 98, 2))
    affines = np.stack([box_to_affine(np.array([10.0 * i, 0, 10.0 * i + 50, 60]), size=64) for i in range(3)])
    batched = transform_points(points, affines)
    for row, affine, expected in zip(points, affines, batched):
        assert np.allclose(transform_points(row, affine), expected)


def test_crop_puts_a_known_pixel_where_the_affine_sends_it():
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[130, 200] = (255, 128, 7)
    # Side 120 * 1.2 = 144: one frame pixel per crop pixel, the box centre (170, 120) at the crop centre (72, 72).
    affine = box_to_affine(np.array([110, 60, 230, 180]), size=144)
    x, y = transform_points(np.array([[200.0, 130.0]]), affine)[0]
    assert (x, y) == (102, 82)
    face_crop = crop(image, affine, 144)
    assert face_crop.shape == (144, 144, 3)
    assert tuple(face_crop[82, 102]) == (255, 128, 7)
    assert face_crop.sum() == 255 + 128 + 7


def test_crop_fills_outside_the_frame_with_black():
    image = np.full((50, 50, 3), 200, dtype=np.uint8)
    # Side 60, scale 1, centre (-25, 25): frame (x, y) lands on crop (x + 55, y + 5).
    face_crop = crop(image, box_to_affine(np.array([-50, 0, 0, 50]), size=60), 60)
    assert face_crop[:, :55].max() == 0 and face_crop[:5].max() == 0 and face_crop[55:].max() == 0
    assert face_crop[5:55, 55:].min() == 200


def test_degenerate_box_is_rejected():
    with pytest.raises(ValueError, match="degenerate"):
        box_to_affine(np.array([10, 10, 10, 5]))


@pytest.mark.parametrize("channels_last", [False, True])
def test_crops_to_tensor_normalises_per_channel_in_the_layout_asked_for(channels_last):
    crops = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    crops[1, ..., 0] = 255
    crops[1, 1, 2] = (7, 99, 200)
    tensor = crops_to_tensor(crops, channels_last=channels_last)
    assert tensor.shape == (2, 3, 4, 5) and tensor.dtype == torch.float32
    assert torch.allclose(tensor[0, :, 0, 0], torch.from_numpy(-IMAGENET_MEAN / IMAGENET_STD))
    assert torch.isclose(tensor[1, 0, 2, 3], torch.tensor((1 - 0.485) / 0.229))
    assert torch.allclose(tensor[1, :, 1, 2], torch.from_numpy((np.array([7, 99, 200], dtype=np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD))
    assert tensor.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert tensor.is_contiguous() != channels_last


def test_crops_to_tensor_takes_a_flipped_view():
    crops = np.random.default_rng(0).integers(0, 256, (1, 4, 5, 3), dtype=np.uint8)
    flipped = crops[:, :, ::-1]
    assert torch.equal(crops_to_tensor(flipped), crops_to_tensor(flipped.copy()))
    assert torch.equal(crops_to_tensor(flipped)[..., 0], crops_to_tensor(crops)[..., -1])
