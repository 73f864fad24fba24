"""The ``nir`` extra (:mod:`esl_hw.interchange.extra`): a missing module is one line naming the extra."""

from __future__ import annotations

import importlib

import pytest

from esl_hw.errors import EslError
from esl_hw.interchange import extra


def test_a_missing_module_names_the_extra(monkeypatch) -> None:
    real = importlib.import_module

    def missing(name, *args):
        if name == "nir":
            raise ModuleNotFoundError("No module named 'nir'")
        return real(name, *args)

    monkeypatch.setattr(extra.importlib, "import_module", missing)
    with pytest.raises(EslError) as caught:
        extra.require("nir", "export-nir")
    message = str(caught.value)
    assert message.startswith("export-nir needs the 'nir' extra") and "pip install 'esl-hw[nir]'" in message
    assert not extra.available("nir")


def test_only_the_extras_modules_are_required() -> None:
    with pytest.raises(ValueError, match="not a module of the 'nir' extra"):
        extra.require("numpy", "x")
