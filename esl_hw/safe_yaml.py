"""YAML files read safely: one-line errors, no duplicate keys, no aliases, bounded size and depth.

:func:`load_yaml` reads a regular UTF-8 file of at most :data:`esl_hw.limits.MAX_YAML_BYTES` with
:class:`StrictLoader`, pyyaml's ``SafeLoader`` (plain data only, never Python objects) that also
refuses

- a key given twice in one mapping (pyyaml keeps the last one without a word);
- aliases ``*name``: no file of this project uses anchors, and without aliases a small file cannot
  expand into an exponentially large structure ("billion laughs");
- nesting deeper than :data:`esl_hw.limits.MAX_YAML_DEPTH` levels.

Every problem, including a file that cannot be read, is an :class:`EslError`
``"<what> <path>: <problem>"``. Values are not checked here: the callers do that.
:func:`dump_yaml` writes what :func:`load_yaml` reads back (it never writes aliases).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from esl_hw.errors import EslError
from esl_hw.limits import MAX_YAML_BYTES, MAX_YAML_DEPTH, shown

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: What pyyaml's constructors raise on values they cannot read (an int of 5000 digits, a bad date,
#: ``!!int ''``, ``!!bool x``, ``!!timestamp x``): refused as YAML problems, with the line.
_CONSTRUCT_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


class UnsupportedYaml(yaml.MarkedYAMLError):
    """Valid YAML that this project does not read (aliases, deep nesting)."""


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses duplicate keys, aliases and nesting beyond ``MAX_YAML_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            problem = f"aliases are not supported (found *{event.anchor})"
            raise UnsupportedYaml(None, None, problem, event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                problem = f"nesting deeper than {MAX_YAML_DEPTH} levels is not supported"
                raise UnsupportedYaml(None, None, problem, self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except _CONSTRUCT_ERRORS as error:  # pyyaml's constructors on odd explicit tags (!!int '', !!bool x)
            tag = node.tag.rsplit(":", 1)[-1]
            value = f" {shown(node.value)}" if isinstance(node, ScalarNode) else ""
            problem = f"cannot read{value} as {tag} ({reason(error)})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):  # the base class explains the problem
            return super().construct_mapping(node, deep)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # unhashable: the base class refuses it below
                continue
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {shown(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


class _PlainDumper(yaml.SafeDumper):
    """``SafeDumper`` that writes a shared object twice instead of an anchor and an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def reason(error: BaseException) -> str:
    """The first line of what ``error`` says (its ``strerror`` for an :class:`OSError`)."""
    text = getattr(error, "strerror", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def read_text(path: Path, where: str) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``MAX_YAML_BYTES`` long."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise EslError(f"{where}: is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise EslError(f"{where}: is not a regular file")
        if info.st_size > MAX_YAML_BYTES:
            raise EslError(
                f"{where}: {info.st_size} bytes, more than the {MAX_YAML_BYTES} a YAML file may have"
            )
        with path.open("rb") as stream:
            data = stream.read(MAX_YAML_BYTES + 1)
    except (OSError, ValueError) as error:
        raise EslError(f"{where}: cannot read ({reason(error)})") from None
    if len(data) > MAX_YAML_BYTES:
        raise EslError(f"{where}: more than the {MAX_YAML_BYTES} bytes a YAML file may have")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise EslError(f"{where}: not UTF-8 text (byte 0x{byte:02x} at offset {error.start})") from None


def _problem(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{error.problem.splitlines()[0]}{place}"
    return reason(error)


def parse_yaml(text: str, where: str) -> Any:
    """The data of the YAML document ``text``; ``where`` starts every error message."""
    try:
        loader = StrictLoader(text)  # the reader refuses control characters here already
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except UnsupportedYaml as error:
        raise EslError(f"{where}: {_problem(error)}") from None
    except yaml.YAMLError as error:
        raise EslError(f"{where}: not valid YAML ({_problem(error)})") from None
    except (*_CONSTRUCT_ERRORS, RecursionError) as error:  # raised outside a node, e.g. by a generator
        raise EslError(f"{where}: not valid YAML ({reason(error)})") from None


def load_yaml(path: Path, what: str) -> Any:
    """The data of the YAML file ``path``; errors read ``"<what> <path>: <problem>"``."""
    where = f"{what} {path}"
    return parse_yaml(read_text(Path(path), where), where)


def dump_yaml(data: Any) -> str:
    """YAML text of plain ``data`` (key order kept, no aliases) that :func:`load_yaml` reads back."""
    return yaml.dump(data, Dumper=_PlainDumper, sort_keys=False)
