"""No source file loads data in a way that can run code: a scan of every Python file of the project.

The scan reads the syntax tree (so a call spread over lines is still seen) and refuses:

- unpickling (``pickle.load``/``loads``/``Unpickler``, ``marshal``, ``shelve``, …) anywhere but in the
  restricted unpickler of ``train/vision_data.py``;
- ``numpy.load`` without ``allow_pickle=False``; ``torch.load`` without ``weights_only=True``;
- PyYAML's unsafe entry points (``yaml.load``, ``unsafe_load``, ``full_load``, the ``Loader``,
  ``UnsafeLoader`` and ``FullLoader`` classes): only ``safe_load`` and ``SafeLoader`` subclasses;
- the ``eval`` and ``exec`` builtins, and ``shell=`` anything but ``False``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("esl_hw", "train", "rtl_gen", "sim", "fpga", "app", "interchange", "bench")
RESTRICTED_UNPICKLER = ("train/vision_data.py", "CifarUnpickler")

UNPICKLING = {
    f"{module}.{name}"
    for module in ("pickle", "_pickle", "cPickle", "dill", "cloudpickle")
    for name in ("load", "loads", "Unpickler", "_Unpickler", "_load", "_loads")
} | {"marshal.load", "marshal.loads", "shelve.open", "shelve.Shelf", "joblib.load", "pandas.read_pickle"}
UNSAFE_YAML = {
    f"yaml.{name}"
    for name in (
        "load",
        "load_all",
        "unsafe_load",
        "unsafe_load_all",
        "full_load",
        "full_load_all",
        "Loader",
        "UnsafeLoader",
        "FullLoader",
        "CLoader",
        "CUnsafeLoader",
        "CFullLoader",
    )
}
CODE_BUILTINS = {"eval", "exec", "builtins.eval", "builtins.exec"}
#: calls that must pass ``keyword=value`` literally
REQUIRED_KEYWORDS = {"numpy.load": ("allow_pickle", False), "torch.load": ("weights_only", True)}
#: calls whose ``keyword``, when given, must be the literal ``value``
SAFE_IF_GIVEN = {"numpy.lib.format.read_array": ("allow_pickle", False)}


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name → the dotted name it was imported as (``np`` → ``numpy``, ``loads`` → ``pickle.loads``)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                aliases[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``numpy.load`` for ``np.load`` (after ``import numpy as np``); None for other expressions."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _exempt(tree: ast.Module, relative: str) -> set[int]:
    """Ids of the nodes inside the restricted unpickler (the one place unpickling is allowed)."""
    if relative != RESTRICTED_UNPICKLER[0]:
        return set()
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == RESTRICTED_UNPICKLER[1]
        for inner in ast.walk(node)
    }


def _keyword_problem(call: ast.Call, name: str, keyword: str, value: bool, required: bool) -> str | None:
    given = [item for item in call.keywords if item.arg == keyword]
    if any(item.arg is None for item in call.keywords):
        return f"{name}(**…) hides {keyword}; pass {keyword}={value} literally"
    if not given:
        return f"{name}(…) without {keyword}={value}" if required else None
    if not (isinstance(given[0].value, ast.Constant) and given[0].value.value is value):
        return f"{name}(…, {keyword}={ast.unparse(given[0].value)}); only {keyword}={value} is safe"
    return None


def _call_problem(call: ast.Call, name: str | None) -> str | None:
    shell = [item for item in call.keywords if item.arg == "shell"]
    if shell and not (isinstance(shell[0].value, ast.Constant) and shell[0].value.value is False):
        return f"shell={ast.unparse(shell[0].value)}"
    if name in REQUIRED_KEYWORDS:
        return _keyword_problem(call, name, *REQUIRED_KEYWORDS[name], required=True)
    if name in SAFE_IF_GIVEN:
        return _keyword_problem(call, name, *SAFE_IF_GIVEN[name], required=False)
    return None


def _reference_problem(name: str) -> str | None:
    if name in UNPICKLING:
        return f"{name} unpickles (runs code); only the restricted unpickler of {RESTRICTED_UNPICKLER[0]} may"
    if name in UNSAFE_YAML:
        return f"{name} can build arbitrary objects; use yaml.safe_load or a SafeLoader subclass"
    if name in CODE_BUILTINS:
        return f"{name} runs code"
    return None


def problems(source: str, relative: str) -> list[str]:
    """``file:line: problem`` for every unsafe load, call or reference in ``source``."""
    tree = ast.parse(source, filename=relative)
    aliases, exempt, found = _aliases(tree), _exempt(tree, relative), []
    for node in ast.walk(tree):
        problem = None
        if isinstance(node, ast.Call):
            problem = _call_problem(node, _dotted(node.func, aliases))
        elif isinstance(node, ast.Name | ast.Attribute) and id(node) not in exempt:
            name = _dotted(node, aliases)
            problem = None if name is None else _reference_problem(name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = (f"{node.module}.{alias.name}" for alias in node.names)
            problem = next(filter(None, map(_reference_problem, names)), None)
        if problem:
            found.append(f"{relative}:{node.lineno}: {problem}")
    return sorted(set(found), key=lambda line: (line.split(":")[0], int(line.split(":")[1])))


def source_files() -> list[Path]:
    return sorted(path for folder in SOURCE_FOLDERS for path in (ROOT / folder).rglob("*.py"))


def test_no_source_file_loads_data_that_can_run_code() -> None:
    files = source_files()
    assert ROOT / RESTRICTED_UNPICKLER[0] in files and len(files) > 50
    found = []
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        try:
            found += problems(path.read_text(encoding="utf-8"), relative)
        except SyntaxError as error:
            found.append(f"{relative}:{error.lineno}: cannot be parsed ({error.msg})")
    assert not found, "unsafe loading in the source:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "import pickle\nwith open(p, 'rb') as f:\n    pickle.load(f)",
        "from pickle import loads as restore\nrestore(data)",
        "import pickle\nclass Reader(pickle.Unpickler):\n    pass",
        "import marshal\nmarshal.loads(data)",
        "import numpy as np\nnp.load(\n    path,\n)",
        "import numpy\nnumpy.load(path, allow_pickle=True)",
        "import numpy as np\nnp.load(path, **options)",
        "import numpy as np\nnp.lib.format.read_array(handle, allow_pickle=True)",
        "import torch\ntorch.load(path, map_location='cpu')",
        "import torch\ntorch.load(\n    path,\n    weights_only=False,\n)",
        "import yaml\nyaml.load(text, Loader=yaml.SafeLoader)",
        "import yaml\nyaml.unsafe_load(text)",
        "import yaml\nyaml.full_load(text)",
        "from yaml import FullLoader",
        "import yaml\nclass Loader(yaml.UnsafeLoader):\n    pass",
        "eval('1 + 1')",
        "exec(code)",
        "import subprocess\nsubprocess.run(command, shell=True)",
        "import subprocess\nsubprocess.run(command, shell=use_shell)",
    ],
)
def test_the_scan_finds_each_unsafe_form(source: str) -> None:
    assert problems(source, "esl_hw/example.py")


def test_the_scan_passes_the_safe_forms() -> None:
    source = """
import json, subprocess, torch, yaml
import numpy as np
np.load(path, allow_pickle=False)
np.lib.format.read_array_header_1_0(stream)
torch.load(path, map_location="cpu", weights_only=True)
yaml.safe_load(text)
class Strict(yaml.SafeLoader):
    pass
net.eval()
json.loads(text)
subprocess.run(command, shell=False)
"""
    assert problems(source, "esl_hw/example.py") == []
    unpickler = "import pickle\nclass CifarUnpickler(pickle.Unpickler):\n    pass\n"
    assert problems(unpickler, RESTRICTED_UNPICKLER[0]) == []
    assert problems(unpickler + "pickle.loads(data)\n", RESTRICTED_UNPICKLER[0])
