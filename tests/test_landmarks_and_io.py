import numpy as np
import pytest

from wflwv.io import atomic_path, save_npy
from wflwv.landmarks import FLIP_PERMUTATION, N_LANDMARKS, PARTS, flip_horizontally


def test_flip_permutation_is_an_involution_over_all_points():
    assert sorted(FLIP_PERMUTATION) == list(range(N_LANDMARKS))
    assert np.array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(N_LANDMARKS))


def test_flip_swaps_the_eyes_and_keeps_the_chin():
    assert FLIP_PERMUTATION[60] == 72 and FLIP_PERMUTATION[96] == 97 and FLIP_PERMUTATION[16] == 16


def test_parts_tile_the_98_points():
    covered = sorted(i for start, end in PARTS.values() for i in range(start, end))
    assert covered == list(range(N_LANDMARKS))


def test_flipping_twice_restores_the_points():
    points = np.random.default_rng(0).uniform(0, 100, size=(3, 98, 2))
    assert np.allclose(flip_horizontally(flip_horizontally(points, 100), 100), points)
    assert np.allclose(flip_horizontally(points, 100)[:, 72, 0], 99 - points[:, 60, 0])


def test_atomic_path_leaves_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "a.npy"
    save_npy(target, np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert np.array_equal(np.load(target), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
