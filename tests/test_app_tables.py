"""The terminal tables, the ``compare`` Markdown and the NeuroBench table (:mod:`esl_hw.app.tables`)."""

from __future__ import annotations

from esl_hw.app.tables import compare_markdown, neurobench_markdown, print_table


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


def test_neurobench_markdown_names_each_metric_with_its_unit() -> None:
    metrics = {
        "Footprint": 40,
        "ConnectionSparsity": 0.6,
        "ActivationSparsity": 0.25,
        "SynapticOperations": {"Effective_MACs": 0.0, "Effective_ACs": 7.0, "Dense": 20.0},
        "csr_bits": 61,
        "samples": 1,
        "neurobench_version": "2.3.0",
    }
    lines = neurobench_markdown(metrics).splitlines()
    assert lines[0] == "NeuroBench 2.3.0 metrics over 1 images (definitions: docs/metrics.md):"
    assert lines[4:] == [
        "| Footprint | 40 | bytes |",
        "| ConnectionSparsity | 0.6000 | fraction |",
        "| ActivationSparsity | 0.2500 | fraction |",
        "| SynapticOperations Effective_MACs | 0.0 | MACs per image |",
        "| SynapticOperations Effective_ACs | 7.0 | ACs per image |",
        "| SynapticOperations Dense | 20.0 | operations per image |",
        "| csr_bits (esl-hw, not NeuroBench) | 61 | bits |",
    ]
