"""The ``nir`` extra: import its modules on first use, or say in one line how to install them.

``pip install 'esl-hw[nir]'`` installs snntorch 0.9.1, nir 1.0.4 and nirtorch 1.0 (and through them
h5py): the versions whose snnTorch NIR export works with torch 2.13 (pyproject.toml says why).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from esl_hw.errors import EslError

EXTRA = "nir"
INSTALL = "pip install 'esl-hw[nir]'"
#: the modules of the extra, by import name
MODULES = ("h5py", "nir", "nirtorch", "snntorch", "torch")


def require(name: str, purpose: str) -> ModuleType:
    """The module ``name`` of the extra, imported; :class:`EslError` naming the extra when it is
    missing (``purpose`` says what needs it, e.g. ``"import-nir"``)."""
    if name not in MODULES:
        raise ValueError(f"{name!r} is not a module of the {EXTRA!r} extra ({', '.join(MODULES)})")
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise EslError(
            f"{purpose} needs the {EXTRA!r} extra ({name} cannot be imported: {error}); "
            f"install it with {INSTALL}"
        ) from None


def available(name: str) -> bool:
    """Whether the module ``name`` of the extra can be imported."""
    try:
        require(name, "check")
    except EslError:
        return False
    return True
