"""`generate.py --plot`'s real windows: of the same class as the generated one beside them, found in steps
(same label row, same requested classes, any), and titled with their own labels (evaluation/plots/same_class.py)."""
from __future__ import annotations

import numpy as np

from evaluation.plots.same_class import OTHER, SAME_REQUEST, SAME_ROW, pick_real, real_titles

REAL = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1], [1, 1, 0], [2, 0, 0]])  # (N=5, 3 label columns)


def test_whole_row_first_then_requested_columns_then_any() -> None:
    rows = np.array([[1, 1, 1],    # whole row present: real row 2
                     [0, 0, 0],    # columns (0, 1) = (0, 0) present only as real row 0 (column 2 differs)
                     [2, 1, 1]])   # class 2 with column 1 = 1: no real window of it
    p = pick_real(REAL, rows, columns=[0, 1], seed=0)
    assert p.how == [SAME_ROW, SAME_REQUEST, OTHER]
    assert p.index[0] == 2 and p.index[1] == 0 and 0 <= p.index[2] < len(REAL)
    assert p.same_class().tolist() == [True, True, False]
    # without a class CSV (every column requested) there is no middle step
    assert pick_real(REAL, rows, columns=None, seed=0).how == [SAME_ROW, OTHER, OTHER]


def test_picks_are_seeded_and_among_the_same_class() -> None:
    rows = np.array([[1, 1, 0]] * 20)  # requested column 0 = 1: real rows 2 and 3
    a = pick_real(REAL, rows, columns=[0], seed=3)
    assert np.array_equal(a.index, pick_real(REAL, rows, columns=[0], seed=3).index)
    assert set(a.index.tolist()) <= {3}  # the whole row [1, 1, 0] exists: always real row 3
    b = pick_real(REAL, np.array([[1, 0, 0]] * 20), columns=[0], seed=3)
    assert set(b.index.tolist()) == {2, 3} and set(b.how) == {SAME_REQUEST}


def test_no_real_windows_and_titles_say_what_each_real_window_is() -> None:
    p = pick_real(np.zeros((0, 3), np.int64), np.array([[0, 0, 0]]), columns=[0], seed=0)
    assert p.index.tolist() == [-1] and p.how == [""] and not p.same_class().any()
    rows = np.array([[1, 1, 1], [0, 0, 0], [2, 1, 1]])
    p = pick_real(REAL, rows, columns=[0, 1], seed=0)
    titles = real_titles(p, REAL, lambda r: ",".join(map(str, r)))
    assert titles[0] == "1,1,1" and titles[1] == f"{SAME_REQUEST}: 0,0,1"
    assert titles[2].startswith(f"{OTHER} (no real window of the requested class): ")
    assert titles[2].endswith(",".join(map(str, REAL[p.index[2]])))


def test_a_class_missing_from_the_first_source_comes_from_the_next() -> None:
    test = REAL[:2]                                  # classes 0 only
    val = np.array([[2, 1, 1]])                      # class 2
    train = np.array([[1, 0, 0], [1, 1, 1]])         # class 1
    rows = np.array([[0, 1, 0], [2, 0, 0], [1, 1, 1], [3, 0, 0]])
    p = pick_real([test, val, train], rows, columns=[0], seed=0)
    assert p.source.tolist()[:3] == [0, 1, 2] and p.index.tolist()[:3] == [1, 0, 1]
    assert p.how == [SAME_ROW, SAME_REQUEST, SAME_ROW, OTHER] and p.source[3] == 0  # class 3: nowhere
    titles = real_titles(p, [test, val, train], lambda r: ",".join(map(str, r)), ["test", "val", "train"])
    assert titles[:3] == ["0,1,0", f"val: {SAME_REQUEST}: 2,1,1", "train: 1,1,1"]
    assert titles[3].startswith(f"{OTHER} ")
