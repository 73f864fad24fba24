"""Tests for esl_hw.train.config: strict schema, ranges, defaults and round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from esl_hw.errors import EslError
from esl_hw.train.config import (
    Config,
    config_from_dict,
    config_to_dict,
    default_config,
    dump_config,
    load_config,
)

REPO = Path(__file__).resolve().parents[1]


def test_empty_mapping_gives_the_defaults() -> None:
    assert config_from_dict({}) == Config()
    assert config_from_dict(None) == default_config()


def test_demo_yaml_equals_the_packaged_defaults() -> None:
    assert load_config(REPO / "configs" / "demo.yaml") == default_config()


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"model": {"hiden": [10]}}, "'model.hiden'"),
        ({"modle": {}}, "'modle'"),
        ({"sparsity": {"denisty": 0.2}}, "'sparsity.denisty'"),
        ({"train": {"epochs": 1, "lr_decay": 0.1}}, "'train.lr_decay'"),
        ({"data": {"pth": "x"}}, "'data.pth'"),
    ],
)
def test_unknown_keys_are_named(raw: dict, key: str) -> None:
    with pytest.raises(EslError, match=f"unknown key {key}"):
        config_from_dict(raw)


@pytest.mark.parametrize("density", [0, 0.0, -0.1, 1.5])
def test_density_outside_unit_interval_is_refused(density: float) -> None:
    with pytest.raises(EslError, match="sparsity.density"):
        config_from_dict({"sparsity": {"density": density}})


def test_full_density_is_allowed() -> None:
    assert config_from_dict({"sparsity": {"density": 1}}).sparsity.density == 1.0


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"sparsity": {"delta_t": 0}}, "sparsity.delta_t"),
        ({"sparsity": {"delta_t": -5}}, "sparsity.delta_t"),
        ({"sparsity": {"t_end": 0}}, "sparsity.t_end"),
        ({"sparsity": {"t_end": 1.2}}, "sparsity.t_end"),
        ({"sparsity": {"alpha": 1.5}}, "sparsity.alpha"),
        ({"sparsity": {"delta_t": 2.5}}, "sparsity.delta_t must be an integer"),
        ({"train": {"epochs": True}}, "train.epochs must be an integer"),
        ({"train": {"lr": "fast"}}, "train.lr must be a number"),
        ({"train": {"lr": 0}}, "train.lr"),
        ({"model": {"hidden": "128"}}, "model.hidden"),
        ({"model": {"hidden": []}}, "model.hidden"),
        ({"model": {"hidden": [0]}}, r"model.hidden\[0\]"),
        ({"model": {"leak_shift": 16}}, "model.leak_shift"),
        ({"model": {"threshold": 0}}, "model.threshold"),
        ({"model": {"surrogate": "relu"}}, "model.surrogate"),
        ({"sparsity": {"prune": "gradient"}}, "known: set, magnitude"),
        ({"sparsity": {"grow": "rigl"}}, "random, random-unfired, hardware-random"),
        ({"sparsity": {"grow": "hardware-random"}}, "needs sparsity.prune: magnitude, got 'set'"),
        ({"sparsity": {"lanes": 3}}, "sparsity.lanes must be a power of two, got 3"),
        ({"sparsity": {"lanes": 0}}, "sparsity.lanes must be a power of two in 1..65536, got 0"),
        ({"sparsity": {"lanes": "4"}}, "sparsity.lanes must be a power of two"),
        ({"sparsity": {"lfsr_seed": 0}}, "sparsity.lfsr_seed must be an integer in 1..0xffffffff, got 0"),
        ({"sparsity": {"lfsr_seed": 1 << 32}}, "sparsity.lfsr_seed must be an integer in 1..0xffffffff"),
        ({"sparsity": {"lfsr_seed": True}}, "sparsity.lfsr_seed must be an integer"),
        ({"sparsity": {"dense_layers": [2]}}, r"sparsity.dense_layers\[0\]"),
        ({"data": {"val_fraction": 1.0}}, "data.val_fraction"),
        ({"seed": -1}, "seed"),
        ({"train": []}, "train must be a mapping"),
        ({"train": {"device": "tpu"}}, "train.device"),
    ],
)
def test_bad_values_are_named(raw: dict, fragment: str) -> None:
    with pytest.raises(EslError, match=fragment):
        config_from_dict(raw)


def test_epsilon_replaces_the_default_density() -> None:
    config = config_from_dict({"sparsity": {"epsilon": 5}})
    assert config.sparsity.density is None
    assert config.sparsity.epsilon == 5.0


def test_density_and_epsilon_together_are_refused() -> None:
    with pytest.raises(EslError, match="exactly one"):
        config_from_dict({"sparsity": {"density": 0.2, "epsilon": 5}})
    with pytest.raises(EslError, match="exactly one"):
        config_from_dict({"sparsity": {"density": None}})


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    config = config_from_dict(
        {"seed": 3, "model": {"hidden": [20, 10], "leak_shift": None}, "sparsity": {"epsilon": 2}}
    )
    assert config_from_dict(config_to_dict(config)) == config
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    assert config.model.hidden == (20, 10)


def test_unreadable_files_raise(tmp_path: Path) -> None:
    with pytest.raises(EslError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(EslError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(EslError, match="top level must be a mapping"):
        load_config(bad)


def test_init_and_layer_density_overrides() -> None:
    config = config_from_dict({"sparsity": {"init": "uniform", "layer_density": {0: 0.05}}})
    assert config.sparsity.init == "uniform" and config.sparsity.layer_density == ((0, 0.05),)
    assert config_from_dict(config_to_dict(config)) == config
    with pytest.raises(EslError, match="sparsity.init ='xavier' unknown"):
        config_from_dict({"sparsity": {"init": "xavier"}})
    with pytest.raises(EslError, match=r"layer_density\[0\] =1.5 outside"):
        config_from_dict({"sparsity": {"layer_density": {0: 1.5}}})
    with pytest.raises(EslError, match=r"sparsity.layer_density\[5\] =5 outside"):
        config_from_dict({"sparsity": {"layer_density": {5: 0.5}}})


@pytest.mark.parametrize("grow", ["gradient", "momentum", "random", "random-unfired"])
def test_every_grow_rule_is_a_valid_config(grow: str) -> None:
    assert config_from_dict({"sparsity": {"grow": grow}}).sparsity.grow == grow


def test_hardware_random_config_and_its_one_line_errors() -> None:
    raw = {"sparsity": {"prune": "magnitude", "grow": "hardware-random", "lanes": 4, "lfsr_seed": 99}}
    sparsity = config_from_dict(raw).sparsity
    assert (sparsity.grow, sparsity.lanes, sparsity.lfsr_seed) == ("hardware-random", 4, 99)
    assert config_from_dict({}).sparsity.lanes == 1 and config_from_dict({}).sparsity.lfsr_seed == 0xACE1
    assert config_from_dict(config_to_dict(config_from_dict(raw))) == config_from_dict(raw)
    single = {**raw, "model": {"kind": "single_spike"}}
    with pytest.raises(EslError, match="needs model.kind 'lif', not 'single_spike'") as error:
        config_from_dict(single)
    assert "\n" not in str(error.value)


def test_every_shipped_config_loads() -> None:
    folder = Path(__file__).resolve().parent.parent / "configs"
    paths = sorted(folder.glob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        load_config(path)


@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
def test_devices_are_accepted(device: str) -> None:
    assert config_from_dict({"train": {"device": device}}).train.device == device
