"""``report.json`` and ``report.md`` of a synthesis run (see :mod:`esl_hw.fpga.synth`)."""

from __future__ import annotations

import json
from pathlib import Path

from esl_hw.fpga.targets import RESOURCE_LABELS


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _critical(path: dict | None) -> list[str]:
    if not path:
        return []
    cells = " → ".join(f"`{cell}`" for cell in path["cells"][:8])
    return [f"Critical path ({path['ns']} ns): {cells}{' …' if len(path['cells']) > 8 else ''}."]


def _offenders(report: dict) -> str:
    bad = [m for m in report["memories"] if not m["ok"]]
    return ", ".join(f"`{m['name']}` ({m['depth']} x {m['width']}, {m['mapped']})" for m in bad)


def _settings(settings: dict | None) -> list[str]:
    """The configuration synthesis chose and the candidates it passed over (docs/fpga.md)."""
    if not settings or "chosen" not in settings:
        return []
    how = "chosen for the target" if settings.get("auto") else "as planned"
    lines = ["", f"Settings ({how}): {settings['chosen']}."]
    if settings.get("streaming_dropped"):
        lines.append("Streaming dropped to fit (one inference at a time; the same results and cycles).")
    for entry in settings.get("dropped", []) + settings.get("tried", []):
        lines.append(f"- passed over: {entry['settings']} ({entry['reason']})")
    return lines


def markdown(report: dict) -> str:
    """The Markdown form of a report dict (:meth:`SynthReport.to_dict`)."""
    model = report["model"]
    sizes = "-".join(str(size) for size in model["sizes"])
    lines = [
        f"# Synthesis report: {report['device']} ({report['target']})",
        "",
        f"Model {sizes}, {model['synapses']} synapses (density {model['density']}), weights "
        f"{'/'.join(str(bits) for bits in model['w_bits'])} bits, T = {model['timesteps']}; "
        f"{report['lanes']} lane(s), rewiring unit {'included' if report.get('rewiring') else 'left out'}, "
        f"streamed inferences {'on' if report.get('streaming') else 'off'}.",
        *_settings(report.get("settings")),
        *(
            [
                "",
                "Synapses in SPRAM: it is not initialised by the bitstream, so the host writes them "
                "before the first inference (`esl-hw run --load-synapses`, `HostDriver.load_synapses`).",
            ]
            if report.get("synapse_memory") == "spram"
            else []
        ),
        "",
        "| resource | used | available | % |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind, row in report["utilisation"].items():
        lines.append(
            f"| {RESOURCE_LABELS.get(kind, kind)} | {row['used']} | {row['available']} "
            f"| {_value(row['percent'])} |"
        )
    timing = {True: "met", False: "NOT met", None: "not measured"}[report["timing_met"]]
    lines += [
        "",
        f"Clock: requested {report['freq_mhz']:g} MHz, post-route Fmax {_value(report['fmax_mhz'])} MHz "
        f"({timing}).",
        f"Latency per inference: {_value(report['cycles_per_inference'])} cycles "
        f"({report['cycles_source']}) = {_value(report['latency_us'])} µs at Fmax.",
        *_critical(report.get("critical_path")),
        "",
        f"Capacities: {report['capacity_source']}. The figures include the two-pin synthesis shim "
        f"({report['shim']['ffs']} flip-flops, about {report['shim']['luts_approx']} LUTs).",
        "",
        "## Memories",
        "",
        "Row-pointer, synapse, potential and current memories must map to block RAM or SPRAM: "
        + ("**all do**." if report["memories_in_block_ram"] else f"**some do not**: {_offenders(report)}."),
        "",
        "| memory | role | depth x width | mapped to | cells | ok |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for memory in report["memories"]:
        cells = ", ".join(f"{count} {kind}" for kind, count in memory["cells"].items()) or "-"
        lines.append(
            f"| `{memory['name']}` | {memory['role']} | {memory['depth']} x {memory['width']} | "
            f"{memory['mapped']} | {cells} | {'yes' if memory['ok'] else '**no**'} |"
        )
    lines += ["", "## Fit", ""]
    if report["overflow"]:
        for row in report["overflow"]:
            if row.get("error"):
                lines.append(f"- place-and-route failed: {row['error']}")
            else:
                lines.append(
                    f"- **{RESOURCE_LABELS.get(row['resource'], row['resource'])}** overflows: "
                    f"{row['used']} needed, {row['available']} available (+{row['excess']})."
                )
    else:
        lines.append("The design fits the device.")
    advice = report["fit_advice"]
    lines.append(
        f"- Block-RAM estimate ({'fits' if advice['fits'] else 'does not fit'}): "
        f"{advice['bram_needed']} EBR, "
        f"{advice['spram_needed']} SPRAM."
    )
    labels = (("max_density", "largest density that fits"), ("max_w_bits", "largest weight width that fits"))
    for key, label in labels:
        if key in advice:
            lines.append(f"- {label}: {'none' if advice[key] is None else _value(advice[key])}")
    if "with_spram" in advice:
        spram = advice["with_spram"]
        lines.append(
            f"- With synapse memories in SPRAM (needs a host-loaded, uninitialised synapse memory in the "
            f"core): {spram['bram_needed']} EBR + {spram['spram_needed']} SPRAM, "
            f"{'fits' if spram['fits'] else 'does not fit'}"
            + (f"; largest density {_value(spram.get('max_density'))}" if not spram["fits"] else "")
            + "."
        )
    seconds = ", ".join(f"{tool} {value:g} s" for tool, value in report["seconds"].items())
    lines += ["", f"Tool time: {seconds}.", ""]
    return "\n".join(lines)


def write_reports(report: dict, folder: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``folder``; return their paths."""
    json_path = folder / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = folder / "report.md"
    md_path.write_text(markdown(report))
    return json_path, md_path
