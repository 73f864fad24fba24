"""The terminal tables and the ``compare`` Markdown (:mod:`esl_hw.app.tables`)."""

from __future__ import annotations

from esl_hw.app.tables import compare_markdown, print_table


def test_print_table_aligns_names_and_formats_numbers(capsys) -> None:
    print_table("title", [("a", 0.5), ("longer name", 1234.5), ("tiny", 1e-5), ("zero", 0.0), ("n", 7)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "title" and lines[1] == "-" * (len("longer name") + 24)
    assert lines[2:] == [
        "a            0.5000",
        "longer name  1234.5",
        "tiny         1e-05",
        "zero         0.0000",
        "n            7",
    ]


def test_compare_markdown() -> None:
    report = {
        "float_accuracy": None,
        "float_source": "the artifact names no training run",
        "int_accuracy": 0.91,
        "int_samples": 1000,
        "rtl_accuracy": 0.9,
        "rtl_samples": 10,
        "simulator": "icarus",
        "rtl_mismatches": 0,
        "potentials_checked": True,
        "int_accuracy_rtl_samples": 0.9,
    }
    text = compare_markdown(report)
    assert text.splitlines()[:5] == [
        "| model | accuracy | on |",
        "| --- | --- | --- |",
        "| float model | n/a | the artifact names no training run |",
        "| integer reference | 0.9100 | 1000 images |",
        "| RTL | 0.9000 | 10 images, icarus |",
    ]
    assert "**0** of 10 (potentials checked: yes)" in text and text.endswith("0.9000.\n")
