"""A bundle folder is swapped in whole or not at all."""

import pytest

from facever.training.atomic import atomic_directory


def test_a_complete_folder_replaces_the_old_one(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_directory(out) as tmp:
        assert tmp.parent == tmp_path and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").exists()               # untouched until the block ends
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_failed_build_leaves_the_old_folder_and_no_temporary_one(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("export failed")
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_file_is_moved_into_place_only_when_written_whole(tmp_path):
    import numpy as np

    from facever.training.atomic import atomic_file

    out = tmp_path / "sub" / "cache.npz"
    with atomic_file(out, ".npz") as tmp:
        np.savez(tmp, x=np.arange(3))                   # np.savez keeps a name that ends in .npz
    assert np.load(out)["x"].tolist() == [0, 1, 2]
    with pytest.raises(OSError):
        with atomic_file(out, ".npz") as tmp:
            tmp.write_bytes(b"half")
            raise OSError("disk full")
    assert np.load(out)["x"].tolist() == [0, 1, 2] and sorted(p.name for p in out.parent.iterdir()) == ["cache.npz"]
