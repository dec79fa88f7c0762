"""Fuzzing the parsers of user files (Hypothesis): the CSV recording reader, the config loader (arbitrary
text and arbitrary `key=value` overrides) and the class-CSV parser. Whatever the input, the result is a
value or a `UserError` whose text is one line: never another exception, never a traceback.

The default suite runs a few hundred examples, derandomized (the same ones on every machine); the
`slow` variants run many more.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dataloader.class_csv import RequestPlan, read_class_csv  # noqa: E402
from dataloader.config import load_config  # noqa: E402
from dataloader.config.data_schema import ChannelSpec  # noqa: E402
from dataloader.errors import UserError  # noqa: E402
from dataloader.readers import read_csv  # noqa: E402


def _fast(n: int) -> Any:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _slow(n: int) -> Any:
    return settings(max_examples=n, deadline=None, derandomize=False, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _outcome(fn: Callable[[], Any]) -> Any:
    """fn()'s value, or None after a UserError that prints as exactly one line; anything else propagates."""
    try:
        return fn()
    except UserError as e:
        text = f"error: {e}"
        assert len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text, repr(text)
        assert e.where and e.what, repr(text)
        return None


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every example (module scope: Hypothesis reruns a test body, not its fixtures)."""
    return tmp_path_factory.mktemp("fuzz")


def _file(work: Path, data: bytes | str, name: str) -> Path:
    p = work / name
    if isinstance(data, str):
        p.write_text(data, encoding="utf-8", newline="")
    else:
        p.write_bytes(data)
    return p


# -- text that looks like the format, so that the parsers get past their first checks ----------------
def _cells(alphabet: str, words: list[str]) -> st.SearchStrategy[str]:
    cell = st.one_of(st.sampled_from(words), st.text(alphabet, max_size=6), st.floats().map(repr),
                     st.integers(-10**30, 10**30).map(str), st.integers(10**300, 10**420).map(str))
    row = st.lists(cell, min_size=0, max_size=4).map(",".join)
    sep = st.sampled_from(["\n", "\r\n", "\r", "\n\n"])
    return st.tuples(st.lists(row, max_size=8), sep).map(lambda t: t[1].join(t[0]))


CSV_TEXT = st.one_of(
    st.tuples(st.sampled_from(["A,B", "B,A", "A", "A,B,C", "A,A", "\ufeffA,B", " A , B", '"A",B', "a,b", ""]),
              _cells('0123456789.-+eEinfaNn ,"#\t', ["nan", "NaN", "inf", "-inf", "", "1", "x", '"', "1e999"]))
    .map(lambda t: t[0] + "\n" + t[1]),
    st.text(max_size=80),
)
CSV_BYTES = st.one_of(st.binary(max_size=60), st.binary(max_size=40).map(lambda b: b"A,B\n1," + b))


def _check_reader(work: Path, data: bytes | str, name: str, missing: Any) -> None:
    chans = [ChannelSpec(name="A", missing=missing), ChannelSpec(name="B", required=False, missing=missing)]
    path = _file(work, data, name)
    x = _outcome(lambda: read_csv(str(path), chans))
    if x is not None:  # a result is a (C, N) float array without infinities
        assert x.shape[0] == 2 and x.shape[1] >= 1 and not (abs(x) == float("inf")).any()


READER_ARGS = (st.one_of(CSV_TEXT, CSV_BYTES), st.sampled_from(["r.csv", "r.csv.gz"]),
               st.sampled_from(["nan", 0, None]))


@_fast(150)
@given(*READER_ARGS)
@example("A,B\n1,2\n3," + "9" * 400 + "\n", "r.csv", "nan")   # no float holds it (was OverflowError)
@example('"A\nx",B\n1,2\n', "r.csv", "nan")                   # a header cell across lines
@example("A,B\n" + '"' * 3 + "x" * 200_000 + "\n", "r.csv", None)  # a cell beyond csv's field limit
@example("A,B\nTrue,False\n", "r.csv", None)
@example(b"\x1f\x8b\x08\x00garbage", "r.csv.gz", None)
def test_csv_reader_fuzz(work: Path, data: bytes | str, name: str, missing: Any) -> None:
    _check_reader(work, data, name, missing)


@pytest.mark.slow
@_slow(3000)
@given(*READER_ARGS)
def test_csv_reader_fuzz_long(work: Path, data: bytes | str, name: str, missing: Any) -> None:
    _check_reader(work, data, name, missing)


# -- configs ---------------------------------------------------------------------------------------
BASE = """\
data:
  source: in/signals
  prepared: out/p.h5
  fs: 4
  window: 64
  channels:
    - {name: A, range: [0, 10]}
    - {name: B, required: false}
  label_columns:
    - {column: grp, categories: [a, b]}
model:
  size: tiny
train:
  max_steps: 8
"""
KEYS = ["data", "data.fs", "data.window", "data.window_s", "data.stride_s", "data.channels", "data.channels.0",
        "data.channels.0.range", "data.channels.1.valid", "data.channels.5.name", "data.split.train",
        "data.label_columns.0.edges", "data.target_fs", "model", "model.size", "model.diffusion.num_steps",
        "model.unet.channels", "train.max_steps", "train.lr", "train.batch_size", "sample.steps",
        "sample.sampler", "include", "nope", "data..fs", "data.channels.²", "eval.metrics", "sr", "privacy"]
YAML_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 :-[]{},.!&*|>'\"#%@`?\n\t\\~"
YAML_VALUES = st.one_of(
    st.sampled_from(["1", "-1", "0", "1e400", ".nan", "-.inf", "null", "[]", "{}", "[0, 1]", "[1, 0]", "true",
                     "!!python/object:os.system x", "!!binary xx", "!!set {a}", "!foo 3", "&a [*a]", "*a", "[",
                     "'", "2001-01-01", "0x1f", "1_000", "ddim", "tiny", "auto", "{a: 1, a: 2}",
                     "99999999999999999999999999", "\x00", "\ufeff1"]),
    st.text(YAML_ALPHABET, max_size=20), st.text(max_size=10))
OVERRIDES = st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), YAML_VALUES)
                     .map(lambda kv: f"{kv[0]}={kv[1]}") | st.text(max_size=12), max_size=4)
CONFIG_TEXT = st.one_of(
    st.text(YAML_ALPHABET, max_size=120),
    st.tuples(st.just(BASE), st.text(YAML_ALPHABET, max_size=40)).map("".join),
    st.tuples(st.just(BASE), st.sampled_from(KEYS), YAML_VALUES)
    .map(lambda t: t[0] + "\n".join(f"{'  ' * i}{k}:" for i, k in enumerate(t[1].split("."))) + " " + t[2]),
    st.binary(max_size=60), st.text(max_size=60))


def _check_config(work: Path, text: bytes | str, overrides: list[str]) -> None:
    path = _file(work, text, "c.yaml")
    cfg = _outcome(lambda: load_config(path, overrides))
    if cfg is not None:  # a loaded config is data: its resolved YAML text can be produced
        assert cfg.yaml().startswith("# resolved from")


@_fast(150)
@given(CONFIG_TEXT, st.just([]))
@example("\x1f", [])                                     # refused by PyYAML's reader (was ReaderError)
@example(b"data: \xff\xfe\n", [])                         # not UTF-8 (was UnicodeDecodeError)
@example(BASE + "  x: !!python/object:os.system ls\n", [])
@example("[" * 5000, [])                                   # nesting deeper than the parser's recursion
@example("data:\n  \"a\\nb\": 1\n", [])                   # a key with a newline: would break the one line
def test_config_text_fuzz(work: Path, text: bytes | str, overrides: list[str]) -> None:
    _check_config(work, text, overrides)


@_fast(150)
@given(st.just(BASE), OVERRIDES)
@example(BASE, ["model.size=!!binary xx"])                  # was a 4-line error
@example(BASE, ["data.channels.²=1"])                        # "²".isdigit() but int("²") fails
@example(BASE, ["data.window=" + "9" * 5000])
def test_config_overrides_fuzz(work: Path, text: str, overrides: list[str]) -> None:
    _check_config(work, text, overrides)


@pytest.mark.slow
@_slow(3000)
@given(st.one_of(CONFIG_TEXT, st.just(BASE)), OVERRIDES)
def test_config_fuzz_long(work: Path, text: bytes | str, overrides: list[str]) -> None:
    _check_config(work, text, overrides)


# -- class CSVs ------------------------------------------------------------------------------------
LABELS = ["grp", "score"]
CLASSES = [["a", "b"], ["low", "high", "1"]]
COUNTS = [[0, 0, 5], [1, 2, 3], [0, 1, 1]]   # unique training label rows + window counts
CLASS_TEXT = st.one_of(
    st.tuples(st.sampled_from(["grp,score,count", "score,count", "count", "grp,grp,count", "grp,count,score",
                               "grp", "", "# c\ngrp,count", "\ufeffgrp,count"]),
              _cells("0123456789-+ab#lowhigh ,\"", ["a", "b", "low", "high", "1", "2", "-3", "1e9", "999999999"]))
    .map(lambda t: t[0] + "\n" + t[1]),
    st.text(max_size=60), st.binary(max_size=60))


def _check_class_csv(work: Path, text: bytes | str) -> None:
    path = _file(work, text, "classes.csv")
    got = _outcome(lambda: read_class_csv(path, LABELS, CLASSES))
    if got is None:
        return
    columns, rows = got
    plan = RequestPlan(columns, rows, COUNTS, len(LABELS), seed=0)
    assert plan.n == sum(c for _, c in rows) >= 1
    head = plan.rows(0, min(plan.n, 64))       # rows are valid codes of their labels
    for j, classes in enumerate(CLASSES):
        assert ((head[:, j] >= 0) & (head[:, j] < len(classes))).all()


@_fast(150)
@given(CLASS_TEXT)
@example(b"grp,count\n\xff,1\n")                          # not UTF-8
@example("grp,count\na," + "9" * 5000 + "\n")
@example("grp,count\na,1000001\n")                         # past MAX_WINDOWS
def test_class_csv_fuzz(work: Path, text: bytes | str) -> None:
    _check_class_csv(work, text)


@pytest.mark.slow
@_slow(3000)
@given(CLASS_TEXT)
def test_class_csv_fuzz_long(work: Path, text: bytes | str) -> None:
    _check_class_csv(work, text)


def test_row_with_an_extra_cell_is_refused_not_shifted(work: Path) -> None:
    """pandas' default reads `1,2,3` under `A,B` as index 1, A=2, B=3: silently shifted columns."""
    chans = [ChannelSpec(name="A"), ChannelSpec(name="B")]
    path = _file(work, "A,B\n1,2,3\n4,5,6\n", "shift.csv")
    with pytest.raises(UserError) as e:
        read_csv(str(path), chans)
    assert e.value.where == f"{path}:2" and "more cells than the header" in e.value.what
    assert read_csv(str(_file(work, "A,B\n1,2\n4,5\n", "ok.csv")), chans).tolist() == [[1, 4], [2, 5]]
