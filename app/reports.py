"""The report of every command: ``<name>.json`` and a short ``<name>.md`` beside it in ``--out``.

:func:`write_report` writes both from one dictionary of results. The JSON file holds the results,
then ``seed`` and ``config`` where the command trained, and ``provenance`` (command line and tool
versions, :func:`esl_hw.app.provenance.provenance`). The Markdown file has a title, an optional
body (e.g. the comparison table of ``compare``), the results as a table with the unit of each key,
the PNG figures, and the provenance. Units and meanings come from the schema of
:mod:`esl_hw.app.report_schema` (docs/reports.md), under the command's name.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from esl_hw.app.provenance import provenance
from esl_hw.app.report_schema import REPORTS, unit

#: Lists longer than this are left to the JSON file in the Markdown table.
LIST_LIMIT = 16
#: Keys the Markdown shows in its own sections rather than in the table.
SECTIONS = ("figures", "seed", "config", "provenance")


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _cell(value: Any, file: str) -> str:
    """A value for the table: scalars as they are, short flat lists joined, the rest referred to."""
    if _scalar(value):
        return _text(value)
    if isinstance(value, (list, tuple)):
        if len(value) <= LIST_LIMIT and all(_scalar(item) for item in value):
            return ", ".join(_text(item) for item in value) if value else "(none)"
        return f"({len(value)} entries in {file}.json)"
    return f"(in {file}.json)"


def result_rows(command: str, results: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(key, value, unit)`` rows of the results of ``command``; a dictionary of results gives one
    row per entry (``key.entry``, the key's unit)."""
    file = REPORTS[command].file
    rows = []
    for key, value in results.items():
        if key in SECTIONS:
            continue
        if isinstance(value, Mapping) and value:
            rows += [(f"{key}.{name}", _cell(item, file), unit(command, key)) for name, item in value.items()]
        else:
            rows.append((key, _cell(value, file), unit(command, key)))
    return rows


def report_markdown(command: str, title: str, payload: Mapping[str, Any], body: str = "") -> str:
    """The Markdown report of ``payload`` (as written to JSON) for ``command``."""
    lines = [f"# {title}", ""]
    if body.strip():
        lines += [body.strip(), ""]
    lines += ["## Results", "", "| key | value | unit |", "| --- | --- | --- |"]
    lines += [f"| `{key}` | {value} | {unit_} |" for key, value, unit_ in result_rows(command, payload)]
    lines += ["", "Meaning of each key: docs/reports.md.", ""]
    figures = payload.get("figures") or []
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{Path(name).stem}]({name})" for name in figures]
        lines.append("")
    record = payload["provenance"]
    lines += ["## Provenance", "", f"- command line: `{shlex.join(record['command_line'])}`"]
    if "seed" in payload:
        lines.append(f"- seed: {payload['seed']}")
    versions = ", ".join(f"{name} {version}" for name, version in record["versions"].items())
    lines += [f"- versions: {versions}", ""]
    if "config" in payload:
        config = yaml.safe_dump(payload["config"], sort_keys=False).rstrip()
        lines += ["Training config:", "", "```yaml", config, "```", ""]
    return "\n".join(lines)


def write_report(
    folder: Path,
    command: str,
    title: str,
    results: Mapping[str, Any],
    args: argparse.Namespace | None,
    body: str = "",
    seed: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``<file>.json`` and ``<file>.md`` of ``command`` (its schema names the file) into
    ``folder``; return the dictionary written to JSON.

    ``results`` are the figures (JSON-able); ``args`` the parsed command line (``None``: no command
    line, e.g. a library call); ``seed`` and ``config`` are added where the command trained.
    """
    payload = {key: value for key, value in results.items() if key != "provenance"}
    if seed is not None:
        payload["seed"] = seed
    if config is not None:
        payload["config"] = dict(config)
    payload["provenance"] = provenance(args if args is not None else argparse.Namespace())
    file = REPORTS[command].file
    (folder / f"{file}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (folder / f"{file}.md").write_text(report_markdown(command, title, payload, body))
    return payload


def add_provenance(
    folder: Path, command: str, title: str, args: argparse.Namespace | None, body: str = ""
) -> dict[str, Any] | None:
    """Rewrite the ``<file>.json`` a stage wrote into ``folder`` (e.g. synthesis's ``report.json``)
    as :func:`write_report` does, with provenance and the Markdown beside it; ``None`` when the
    stage wrote none (it failed before its report)."""
    path = folder / f"{REPORTS[command].file}.json"
    if not path.is_file():
        return None
    return write_report(folder, command, title, json.loads(path.read_text()), args, body)
