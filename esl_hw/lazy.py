"""Lazy re-exports for the stage packages (PEP 562): a numpy-only submodule loads on its own.

Importing ``esl_hw.rtl_gen.plan`` runs ``esl_hw.rtl_gen/__init__`` first; if that imported
:class:`~esl_hw.rtl_gen.SNNCore`, the plan (numpy only) could not be loaded without amaranth. With
:func:`lazy_exports` a package's ``__init__`` names its public objects without importing them, and
each is imported from its submodule on first use (``esl_hw.rtl_gen.SNNCore``,
``from esl_hw.rtl_gen import SNNCore``)::

    __all__ = ["SNNCore", "memory_bits"]
    __getattr__, __dir__ = lazy_exports(__name__, {"core": ("SNNCore",), "plan": ("memory_bits",)})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` that re-export ``exports`` from ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``, e.g. ``"esl_hw.rtl_gen"``.
    exports : mapping of str to iterable of str
        Submodule name relative to ``package`` (``"core"``) -> the public names it provides.

    Returns
    -------
    (__getattr__, __dir__)
        ``__getattr__(name)`` imports the submodule that provides ``name``, stores the object on the
        package (later lookups find it directly) and returns it; any other name raises
        :class:`AttributeError`, so ``from package import submodule`` still finds submodules.
        ``__dir__()`` lists the package's attributes and every exported name.
    """
    origin: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in origin:
                raise ValueError(f"{package}: {name!r} is exported by both {origin[name]!r} and {module!r}")
            origin[name] = module

    def __getattr__(name: str) -> Any:
        module = origin.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(origin))

    return __getattr__, __dir__
