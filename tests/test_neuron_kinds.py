"""Tests for esl_hw.neuron_kinds: the reference's registry of neuron kinds and how run() uses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import random_model

from esl_hw import neuron_kinds, reference
from esl_hw.errors import EslError
from esl_hw.neuron_kinds import NEURON_KINDS, NeuronKind, lif_step, neuron_kind


def test_lif_is_registered_with_its_step_and_fields() -> None:
    lif = neuron_kind("lif")
    assert lif.name == "lif" and lif.step is lif_step
    assert lif.fields == ("v_bits", "threshold", "leak_shift", "reset")
    cubalif = neuron_kind("cubalif")
    assert cubalif.fields == ("v_bits", "threshold", "leak_shift", "reset", "syn_shift")
    assert reference.lif_step is lif_step and reference.leak is neuron_kinds.leak


@pytest.mark.parametrize("name", ["cuba", "output", "LIF", None, 3])
def test_unknown_kinds_are_refused_naming_the_known_ones(name) -> None:
    with pytest.raises(EslError, match=r"unknown neuron kind .* \(known: cubalif, lif\)"):
        neuron_kind(name)


def _with_kind(model, index: int, kind: str):
    """``model`` with hidden layer ``index`` relabelled (past the artifact's validation)."""
    layer = model.layers[index]
    object.__setattr__(layer, "kind", kind)
    return model


def test_run_dispatches_through_the_registry(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """A registered kind with a state of its own (a step counter beside the potential) drives run()."""

    def counting_step(state, current, layer):
        potential, count = state
        fired, potential = lif_step(potential, current, layer)
        return fired, (potential, count + 1)

    counted = NeuronKind(
        "counted",
        counting_step,
        fields=("v_bits", "threshold", "leak_shift"),
        initial_state=lambda layer, batch: (np.zeros((batch, layer.n_out), dtype=np.int64), 0),
        potential=lambda state: state[0] + state[1],  # shows which function recorded the potential
    )
    monkeypatch.setitem(NEURON_KINDS, "counted", counted)
    model = random_model(rng, (10, 7, 5, 3), timesteps=4)
    spikes = rng.random((4, 3, 10)) < 0.5
    expected = reference.run(model, spikes)
    traced = reference.run(_with_kind(model, 1, "counted"), spikes)
    np.testing.assert_array_equal(traced.outputs, expected.outputs)
    for index in range(2):
        np.testing.assert_array_equal(traced.spikes[index], expected.spikes[index])
    np.testing.assert_array_equal(traced.potentials[0], expected.potentials[0])
    steps = np.arange(1, 5)[:, None, None]
    np.testing.assert_array_equal(traced.potentials[1], expected.potentials[1] + steps)


def test_run_refuses_a_layer_of_an_unknown_kind(rng: np.random.Generator) -> None:
    model = _with_kind(random_model(rng, (8, 6, 3), timesteps=2), 0, "cuba")
    with pytest.raises(EslError, match=r"unknown neuron kind 'cuba' \(known: cubalif, lif\)"):
        reference.run(model, np.zeros((2, 1, 8), dtype=bool))


def test_kinds_are_immutable_records() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        neuron_kind("lif").step = None  # type: ignore[misc]
