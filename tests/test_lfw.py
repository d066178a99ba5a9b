"""LFW protocol file parsing (synthetic files in the official formats; no dataset needed)."""

from __future__ import annotations

import numpy as np
import pytest

from facever.training import lfw
from facever.training.lfw import Pair, image_path, people_images, read_landmarks, read_pairs, read_people, read_people_folds


def write(path, text: str):
    path.write_text(text)
    return path


def test_image_path_is_zero_padded():
    assert image_path("Abel_Pacheco", 1) == "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    assert image_path("George_W_Bush", 530) == "George_W_Bush/George_W_Bush_0530.jpg"


def test_read_pairs_view1(tmp_path):
    f = write(tmp_path / "pairsDevTest.txt",
              "2\nAbdullah_Gul\t13\t14\nAbdullah_Gul\t13\t16\nAbdel_Madi\t1\tDalia_Rabin\t1\nA  2   B 12\n")
    pairs = read_pairs(f)
    assert pairs == [
        Pair("Abdullah_Gul/Abdullah_Gul_0013.jpg", "Abdullah_Gul/Abdullah_Gul_0014.jpg", True, 0),
        Pair("Abdullah_Gul/Abdullah_Gul_0013.jpg", "Abdullah_Gul/Abdullah_Gul_0016.jpg", True, 0),
        Pair("Abdel_Madi/Abdel_Madi_0001.jpg", "Dalia_Rabin/Dalia_Rabin_0001.jpg", False, 0),
        Pair("A/A_0002.jpg", "B/B_0012.jpg", False, 0),
    ]
    assert pairs[3].name1 == "A" and pairs[3].name2 == "B"


def test_read_pairs_view2_folds(tmp_path):
    lines = ["3\t1"]
    for fold in range(3):
        lines += [f"P{fold}\t1\t2", f"Q{fold}\t1\tR{fold}\t3"]
    pairs = read_pairs(write(tmp_path / "pairs.txt", "\n".join(lines) + "\n"))
    assert [p.fold for p in pairs] == [0, 0, 1, 1, 2, 2]
    assert [p.same for p in pairs] == [True, False] * 3
    assert pairs[5] == Pair("Q2/Q2_0001.jpg", "R2/R2_0003.jpg", False, 2)


def test_read_pairs_tolerates_blank_lines_and_crlf(tmp_path):
    f = tmp_path / "p.txt"
    f.write_bytes(b"1\r\n\r\nA\t1\t2\r\nA\t1\tB\t1\r\n\r\n")
    assert len(read_pairs(f)) == 2


@pytest.mark.parametrize("text, line, words", [
    ("1\nA\t1\nA\t1\tB\t1\n", 2, "same-person"),                # too few fields
    ("1\nA\t1\tB\t2\nA\t1\tB\t1\n", 2, "same-person"),          # different where same expected
    ("1\nA\t1\t2\nA\t1\t2\n", 3, "different-people"),           # same where different expected
    ("1\nA\tx\t2\nA\t1\tB\t1\n", 2, "integer"),
    ("1\nA\t0\t2\nA\t1\tB\t1\n", 2, "≥ 1"),
    ("2\nA\t1\t2\nA\t1\tB\t1\n", 3, "promises 4"),             # too few lines
    ("1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\n", 4, "promises 2"),     # too many lines
    ("x y z\n", 1, "header"),
])
def test_read_pairs_errors_give_line_numbers(tmp_path, text, line, words):
    f = write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=rf"bad\.txt:{line}:.*{words}"):
        read_pairs(f)


def test_missing_files_raise_file_not_found_with_path(tmp_path):
    missing = tmp_path / "nope" / "pairs.txt"
    with pytest.raises(FileNotFoundError, match="nope"):
        read_pairs(missing)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_people(missing)
    with pytest.raises(FileNotFoundError, match="protocol"):
        lfw.protocol_file(tmp_path, "pairs.txt")


def test_read_people_single_list(tmp_path):
    f = write(tmp_path / "peopleDevTest.txt", "3\nAJ_Lamas\t1\nAaron_Guiel\t1\nAbdullah_Gul\t19\n")
    assert read_people(f) == {"AJ_Lamas": 1, "Aaron_Guiel": 1, "Abdullah_Gul": 19}
    assert read_people_folds(f) == [{"AJ_Lamas": 1, "Aaron_Guiel": 1, "Abdullah_Gul": 19}]


def test_read_people_folds_people_txt(tmp_path):
    f = write(tmp_path / "people.txt", "2\n2\nA\t1\nB\t3\n1\nC\t2\n")
    assert read_people_folds(f) == [{"A": 1, "B": 3}, {"C": 2}]
    assert read_people(f) == {"A": 1, "B": 3, "C": 2}


@pytest.mark.parametrize("text, line", [
    ("2\nA\t1\n", 2),                  # fewer people than announced
    ("1\nA\t1\nB\t2\n", 3),            # more
    ("2\nA\t1\nA\t2\n", 3),            # listed twice
    ("1\nA\n", 2),                     # malformed (read as a fold header, then ends)
    ("1\nA\tx\n", 2),
    ("2\n1\nA\t1\n", 3),               # fewer folds than announced
    ("1 2\nA\t1\n", 1),
])
def test_read_people_errors(tmp_path, text, line):
    f = write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=rf"bad\.txt:{line}:"):
        read_people_folds(f)


def test_people_images_from_counts_and_from_folders(tmp_path):
    assert people_images(None, {"A": 2, "B": 1}) == ["A/A_0001.jpg", "A/A_0002.jpg", "B/B_0001.jpg"]
    images = tmp_path / "lfw-deepfunneled"
    for name, n in (("A", 2), ("B", 1)):
        (images / name).mkdir(parents=True)
        for i in range(n, 0, -1):
            (images / name / f"{name}_{i:04d}.jpg").write_bytes(b"")
    (images / "A" / "notes.txt").write_text("x")
    assert people_images(tmp_path, ["B", "A"]) == ["B/B_0001.jpg", "A/A_0001.jpg", "A/A_0002.jpg"]
    assert people_images(images, ["A"]) == ["A/A_0001.jpg", "A/A_0002.jpg"]
    with pytest.raises(FileNotFoundError, match="Z"):
        people_images(tmp_path, ["Z"])


def test_read_landmarks(tmp_path):
    f = write(tmp_path / "lm.txt", "A/A_0001.jpg\t107\t107\t147\t111\t124\t143\t103\t157\t139\t161\n")
    lm = read_landmarks(f)
    assert lm["A/A_0001.jpg"].shape == (5, 2)
    np.testing.assert_array_equal(lm["A/A_0001.jpg"][1], [147, 111])
    bad = write(tmp_path / "bad.txt", "A/A_0001.jpg\t1\t2\n")
    with pytest.raises(ValueError, match=r"bad\.txt:1:"):
        read_landmarks(bad)
