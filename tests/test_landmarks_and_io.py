import os

import numpy as np
import pytest

from wflwv import io
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


def test_copy_file_links_where_asked_and_the_file_system_allows_else_copies(tmp_path, monkeypatch):
    source = tmp_path / "a.bin"
    source.write_bytes(b"clip")
    io.copy_file(source, tmp_path / "linked.bin", link=True)
    io.copy_file(source, tmp_path / "copied.bin")
    assert (tmp_path / "linked.bin").samefile(source) and not (tmp_path / "copied.bin").samefile(source)
    monkeypatch.setattr(os, "link", lambda *args: (_ for _ in ()).throw(OSError(18, "Invalid cross-device link")))
    io.copy_file(source, tmp_path / "fallback.bin", link=True)
    assert (tmp_path / "fallback.bin").read_bytes() == b"clip" and not (tmp_path / "fallback.bin").samefile(source)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.bin", "copied.bin", "fallback.bin", "linked.bin"]  # no partial left
