"""esl_hw.safe_yaml: plain data only, one-line errors for every file and YAML problem."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from esl_hw import safe_yaml
from esl_hw.errors import EslError
from esl_hw.safe_yaml import dump_yaml, load_yaml

REPO = Path(__file__).resolve().parents[1]


def _file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "file.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _refused(path: Path, message: str) -> str:
    with pytest.raises(EslError, match=message) as error:
        load_yaml(path, "config")
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"config {path}: ")
    return text


def test_plain_data_loads(tmp_path: Path) -> None:
    text = "a: 1\nb: [1.5, .nan, null, x]\nc: {d: true}\n<<: {e: 2}\n"
    data = load_yaml(_file(tmp_path, text), "config")
    assert data["a"] == 1 and data["c"] == {"d": True} and data["e"] == 2
    assert load_yaml(_file(tmp_path, ""), "config") is None
    assert load_yaml(_file(tmp_path, "\ufeffa: 1\n"), "config") == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nlr: 2\nlr: 3\n", "duplicate key 'lr' at line 3, column 1"),
        ("model:\n  hidden: [1]\n  hidden: [2]\n", "duplicate key 'hidden' at line 3, column 3"),
        ("{a: 1, a: 2}\n", "duplicate key 'a' at line 1"),
        ("1: x\ntrue: y\n", "duplicate key True at line 2"),
    ],
)
def test_duplicate_keys_are_refused_with_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    _refused(_file(tmp_path, text), f"not valid YAML \\({message}")


def test_aliases_are_refused_so_nothing_expands(tmp_path: Path) -> None:
    _refused(_file(tmp_path, "a: &x [1]\nb: *x\n"), r"aliases are not supported \(found \*x\) at line 2")
    laughs = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    laughs += "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))
    started = time.perf_counter()
    _refused(_file(tmp_path, laughs), "aliases are not supported")
    assert time.perf_counter() - started < 1.0


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    _refused(_file(tmp_path, "[" * 100_000 + "]" * 100_000), "nesting deeper than 64 levels is not supported")
    nested: list = []
    for _ in range(59):
        nested = [nested]
    assert load_yaml(_file(tmp_path, "[" * 60 + "]" * 60), "config") == nested


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a: 1\nb: \xff\xfe\n", r"not UTF-8 text \(byte 0xff at offset 8\)"),
        ("a: [1\n", r"not valid YAML \(.* at line 2"),
        ("a: b: c\n", r"not valid YAML \(mapping values are not allowed here at line 1, column 5\)"),
        ("a: 1" + "0" * 5000 + "\n", r"not valid YAML \(cannot read '1000.* as int \(Exceeds the limit"),
        ("a: 2020-13-45\n", r"as timestamp \(month must be in 1..12\) at line 1, column 4\)"),
        ("a: !!bool x\n", r"not valid YAML \(cannot read 'x' as bool"),
        ("a: !!int ''\n", r"not valid YAML \(cannot read '' as int"),
        ("a: !!timestamp x\n", r"not valid YAML \(cannot read 'x' as timestamp"),
        ("a: !!set [1]\n", r"not valid YAML \(expected a mapping node"),
        ("a: !!python/object:os.system {}\n", r"not valid YAML \(could not determine a constructor"),
        ("? [1]\n: 2\n", r"not valid YAML \(found unhashable key"),
        ("a: \x00\n", r"not valid YAML \(unacceptable character #x0000"),
        ("a: !!binary ab\n", r"not valid YAML \(failed to decode base64"),
    ],
    ids=[
        "utf8",
        "unclosed",
        "syntax",
        "int_digits",
        "bad_date",
        "bool_tag",
        "empty_int",
        "timestamp_tag",
        "set_of_list",
        "python_tag",
        "unhashable",
        "nul",
        "binary",
    ],
)
def test_bad_content_is_one_line(tmp_path: Path, content: str | bytes, message: str) -> None:
    _refused(_file(tmp_path, content), message)


def test_file_problems_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _refused(tmp_path / "absent.yaml", r"cannot read \(No such file or directory\)")
    (tmp_path / "folder.yaml").mkdir()
    _refused(tmp_path / "folder.yaml", "is a folder, not a file")
    _refused(Path(str(tmp_path / "a\0b")), r"cannot read \(embedded null byte\)")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.yaml")
        _refused(tmp_path / "fifo.yaml", "is not a regular file")
    path = _file(tmp_path, "a: 1\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    _refused(path, r"cannot read \(Permission denied\)")


def test_files_above_the_size_limit_are_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safe_yaml, "MAX_YAML_BYTES", 64)
    path = _file(tmp_path, "a: [" + "1, " * 40 + "]\n")
    _refused(path, "bytes, more than the 64 a YAML file may have")


def test_dump_writes_no_aliases_and_reads_back(tmp_path: Path) -> None:
    shared = {"x": [1, 2]}
    data = {"b": shared, "a": shared, "n": [1.5, None, "s"]}
    text = dump_yaml(data)
    assert "&" not in text and "*" not in text and text.index("b:") < text.index("a:")
    assert load_yaml(_file(tmp_path, text), "config") == data


def test_no_file_of_the_project_uses_aliases() -> None:
    paths = [*REPO.glob("configs/*.yaml"), *REPO.glob("bench/models/*/model.yaml")]
    assert len(paths) >= 10
    for path in paths:
        load_yaml(path, "file")
