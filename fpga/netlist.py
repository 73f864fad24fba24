"""What Yosys and nextpnr made of the core: its memories and cells, utilisation, overflow and timing.

Pure readers of the tools' outputs (a Yosys JSON netlist, a nextpnr ``--report`` file) for
:mod:`esl_hw.fpga.synth` and :mod:`esl_hw.fpga.boards`: where each memory of the plan went
(:func:`classify_memories`), the resources used against the device's (:func:`utilisation`,
:func:`overflows`, :func:`routed_utilisation`), the achieved Fmax and the critical path.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from esl_hw.fpga import fit
from esl_hw.fpga.targets import RESOURCES, Family, Target, get_family
from esl_hw.rtl_gen.plan import CorePlan

#: The core's instance name in the shim: a memory ``M`` of the plan is ``core.M`` in the netlist.
CORE_PREFIX = "core."


def netlist_memories(plan: CorePlan, prefix: str = CORE_PREFIX) -> dict[str, object]:
    """The netlist name of every memory the gateware instantiates for ``plan`` (``prefix`` plus
    each part of :attr:`esl_hw.rtl_gen.memories.CoreMemory.parts`) and its memory of the list."""
    return {prefix + name: memory for memory in plan.memories for name, _ in memory.parts}


def classify_memories(
    memories: list[dict], cells: dict[str, str], family: Family | str, plan: CorePlan
) -> list[dict]:
    """Where each memory went: ``bram``, ``spram``, ``lutram`` or ``logic`` (flip-flops / LUTs).

    ``cells`` maps netlist cell names to types; a memory ``M`` owns the cells named ``M.<i>.<j>``.
    Its role and whether it must be block RAM (placement ``block``) come from ``plan``'s memory
    list (:func:`netlist_memories`); a memory not in the list (a ROM Yosys made of a table) is
    ``other`` and allowed anywhere.
    """
    family = get_family(family)
    by_prefix: dict[str, Counter] = {}
    for name, cell_type in cells.items():
        prefix = name.rsplit(".", 2)[0] if name.count(".") >= 2 else None
        kind = family.cell_kind(cell_type)
        if prefix is not None and kind in ("bram", "spram", "lutram"):
            by_prefix.setdefault(prefix, Counter())[kind] += 1
    planned = netlist_memories(plan)
    result = []
    for memory in memories:
        known = planned.get(memory["name"])
        role = known.role if known is not None else "other"
        required = known is not None and known.placement == "block"
        used = by_prefix.get(memory["name"], Counter())
        mapped = next((kind for kind in ("bram", "spram", "lutram") if used[kind]), "logic")
        shallow = family.lut_ram and memory["depth"] <= fit.SMALL_DEPTH  # LUT RAM by design (_yosys)
        ok = (not required) or mapped in ("bram", "spram") or memory["depth"] <= 1 or shallow
        where = {"role": role, "mapped": mapped, "cells": dict(used), "required": required, "ok": ok}
        result.append({**memory, **where})
    return result


def netlist_cells(netlist: Path, top: str) -> dict[str, str]:
    design = json.loads(netlist.read_text())
    return {name: cell["type"] for name, cell in design["modules"][top]["cells"].items()}


def count_cells(cells: dict[str, str], family: Family | str) -> dict[str, int]:
    """Resource counts from netlist cell types (before packing)."""
    family = get_family(family)
    counts = dict.fromkeys(RESOURCES, 0)
    for cell_type in cells.values():
        kind = family.cell_kind(cell_type)
        if kind == "carry":
            counts["luts"] += family.carry_luts
        elif kind is not None:
            counts[kind] += 1
    return counts


def utilisation(counts: dict[str, int], target: Target) -> dict[str, dict]:
    """``{kind: {used, available, percent}}`` for every resource the device has."""
    table = {}
    for kind in RESOURCES:
        available = target.capacity[kind]
        if available == 0 and counts.get(kind, 0) == 0:
            continue
        used = counts.get(kind, 0)
        percent = round(100 * used / available, 1) if available else None
        table[kind] = {"used": used, "available": available, "percent": percent}
    return table


def overflows(table: dict[str, dict]) -> list[dict]:
    """Resources used beyond the device's capacity, with the excess."""
    return [
        {
            "resource": kind,
            "used": row["used"],
            "available": row["available"],
            "excess": row["used"] - row["available"],
        }
        for kind, row in table.items()
        if row["used"] > row["available"]
    ]


def critical_path(report: dict) -> dict | None:
    """The longest clock-to-clock path of a nextpnr report: start and end cell, delay, cells on it."""
    best = None
    for entry in report.get("critical_paths", []):
        if entry.get("from", "").startswith("<async>") or not entry.get("path"):
            continue
        delay = sum(step["delay"] for step in entry["path"])
        if best is None or delay > best["ns"]:
            cells = []
            for step in entry["path"]:
                name = step["from"]["cell"].split("_")[0]
                if not cells or cells[-1] != name:
                    cells.append(name)
            best = {
                "from": entry["path"][0]["from"]["cell"],
                "to": entry["path"][-1]["to"]["cell"],
                "ns": round(delay, 2),
                "cells": cells,
            }
    return best


def routed_utilisation(pnr: dict, table: dict[str, dict], target: Target) -> dict[str, dict]:
    """``table`` (from the netlist) updated with nextpnr's packed counts where it has them."""
    counts = {kind: row["used"] for kind, row in table.items()}
    for cell_type, kind in target.family.packed_kinds.items():
        if cell_type in pnr.get("utilization", {}):
            counts[kind] = pnr["utilization"][cell_type]["used"]
    return utilisation(counts, target)


def fmax_of(report: dict) -> float | None:
    values = [entry["achieved"] for entry in report.get("fmax", {}).values() if "achieved" in entry]
    return round(min(values), 2) if values else None
