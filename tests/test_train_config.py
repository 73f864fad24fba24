"""Tests for esl_hw.train.config: strict schema, ranges, defaults and round trips."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from esl_hw.errors import EslError
from esl_hw.train.config import (
    Config,
    check_mlp_shape,
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
        ({"sparsity": {"lanes": 0}}, "sparsity.lanes must be a power of two in 1..64, got 0"),
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


@pytest.mark.parametrize("rule", ["none", "magnitude", "momentum"])
def test_redistribute_rules_are_valid_and_none_is_the_default(rule: str) -> None:
    assert config_from_dict({}).sparsity.redistribute == "none"
    config = config_from_dict({"sparsity": {"redistribute": rule, "prune": "set", "grow": "momentum"}})
    assert config.sparsity.redistribute == rule
    assert config_from_dict(config_to_dict(config)) == config


def test_redistribute_unknown_or_with_hardware_random_is_refused_in_one_line() -> None:
    with pytest.raises(
        EslError, match=r"sparsity.redistribute ='dsr' unknown \(known: none, magnitude, momentum\)"
    ):
        config_from_dict({"sparsity": {"redistribute": "dsr"}})
    hardware = {"prune": "magnitude", "grow": "hardware-random"}
    assert (
        config_from_dict({"sparsity": {**hardware, "redistribute": "none"}}).sparsity.grow
        == "hardware-random"
    )
    for rule in ("magnitude", "momentum"):
        message = f"sparsity.redistribute ='{rule}' cannot be used with sparsity.grow 'hardware-random'"
        with pytest.raises(EslError, match=message) as error:
            config_from_dict({"sparsity": {**hardware, "redistribute": rule}})
        assert "\n" not in str(error.value)


def test_every_shipped_config_loads() -> None:
    """Every training config in configs/ loads (the ``explore_*`` files are exploration spaces,
    loaded by tests/test_app_explore_space.py)."""
    folder = Path(__file__).resolve().parent.parent / "configs"
    paths = sorted(path for path in folder.glob("*.yaml") if not path.name.startswith("explore_"))
    assert len(paths) >= 6
    for path in paths:
        load_config(path)


def test_weight_grad_defaults_to_float32_and_bfloat16_is_for_the_lif_kind_only() -> None:
    assert config_from_dict({}).train.weight_grad == "float32"
    assert config_from_dict({"train": {"weight_grad": "bfloat16"}}).train.weight_grad == "bfloat16"
    with pytest.raises(EslError, match="train.weight_grad") as error:
        config_from_dict({"train": {"weight_grad": "float16"}})
    assert "\n" not in str(error.value)
    with pytest.raises(EslError, match="train.weight_grad.*model.kind 'lif'"):
        config_from_dict({"model": {"kind": "single_spike"}, "train": {"weight_grad": "bfloat16"}})


@pytest.mark.parametrize("device", ["cpu", "cuda", "auto"])
def test_devices_are_accepted(device: str) -> None:
    assert config_from_dict({"train": {"device": device}}).train.device == device


FLOAT_KEYS = [
    ("model", "threshold"),
    ("model", "surrogate_slope"),
    ("model", "t_max"),
    ("model", "weight_cost"),
    ("model", "width"),
    ("model", "tet_lambda"),
    ("sparsity", "density"),
    ("sparsity", "epsilon"),
    ("sparsity", "alpha"),
    ("sparsity", "t_end"),
    ("train", "lr"),
    ("data", "val_fraction"),
]


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 10**400], ids=["nan", "inf", "-inf", "huge_int"]
)
@pytest.mark.parametrize(("section", "key"), FLOAT_KEYS, ids=[f"{s}.{k}" for s, k in FLOAT_KEYS])
def test_every_float_must_be_finite(section: str, key: str, value: float) -> None:
    raw = {section: {key: value}}
    if key == "epsilon":
        raw[section]["density"] = None
    with pytest.raises(EslError, match=f"config: {section}.{key} must be a finite number, got "):
        config_from_dict(raw)


def test_a_nan_layer_density_is_refused() -> None:
    with pytest.raises(EslError, match=r"layer_density\[0\] must be a finite number, got nan"):
        config_from_dict({"sparsity": {"layer_density": {0: math.nan}}})


def test_a_nan_epsilon_in_a_file_no_longer_trains_a_dense_network(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("sparsity:\n  epsilon: .nan\n")
    with pytest.raises(EslError, match="config: sparsity.epsilon must be a finite number, got nan"):
        load_config(path)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"seed": 2**64}, "seed =18446744073709551616 outside 0..4294967295"),
        ({"seed": 2**32}, "seed =4294967296 outside"),
        ({"seed": 1.0}, "seed must be an integer"),
        ({"model": {"hidden": [10**7]}}, r"model.hidden\[0\] =10000000 outside 1..1048576"),
        ({"model": {"hidden": [2**20]}}, r"model.hidden =\[1048576\] needs 832569344 dense weights"),
        ({"model": {"hidden": [16384, 16384]}}, "more than the trainer's limit 134217728"),
        ({"model": {"hidden": [4] * 64}}, "model.hidden has 64 layers, at most 63"),
        ({"model": {"hidden": [True]}}, r"model.hidden\[0\] must be an integer"),
        ({"model": {"timesteps": 4097}}, "model.timesteps =4097 outside 1..4096"),
        ({"model": {"w_bits": 25}}, "model.w_bits =25 outside 2..24"),
        ({"model": {"v_bits": 49}}, "model.v_bits =49 outside 2..48"),
        ({"model": {"tet_lambda": 1.5}}, r"model.tet_lambda =1.5 outside \[0, 1\]"),
        ({"model": {"tet_lambda": -0.1}}, r"model.tet_lambda =-0.1 outside \[0, 1\]"),
        ({"model": {"t_max": 100}}, r"model.t_max =100.0 outside \(0, 80.0\]"),
        ({"model": {"kind": ["lif"]}}, r"model.kind =\['lif'\] unknown"),
        ({"train": {"epochs": 10**9}}, "train.epochs =1000000000 outside 1..100000"),
        ({"train": {"batch_size": 10**6}}, "train.batch_size =1000000 outside 1..65536"),
        ({"train": {"threads": 10**6}}, "train.threads =1000000 outside 1..1024"),
        ({"sparsity": {"delta_t": 2**31}}, "sparsity.delta_t =2147483648 outside 1..2147483647"),
        ({"sparsity": {"dense_layers": [True]}}, r"sparsity.dense_layers\[0\] must be an integer, got True"),
        ({"sparsity": {"dense_layers": [0, 0]}}, r"sparsity.dense_layers =\[0, 0\] lists a layer twice"),
        ({"sparsity": {"dense_layers": "0"}}, "sparsity.dense_layers must be a list"),
        (
            {"sparsity": {"layer_density": [1, 2]}},
            r"sparsity.layer_density\[0\] must be a pair \[layer, density\]",
        ),
        ({"sparsity": {"layer_density": [[0, 0.5, 1]]}}, r"layer_density\[0\] must be a pair"),
        ({"sparsity": {"layer_density": [[0, 0.5], [0, 0.6]]}}, r"layer_density\[0\] is given twice"),
        ({"sparsity": {"layer_density": {"a": 0.5}}}, r"layer_density\['a'\] must be an integer, got 'a'"),
        ({"sparsity": {"layer_density": {True: 0.5}}}, r"layer_density\[True\] must be an integer, got True"),
        ({"sparsity": {"layer_density": "0: 0.5"}}, "sparsity.layer_density must be a mapping"),
        ({"sparsity": {"layer_density": {0: "x"}}}, r"layer_density\[0\] must be a number, got 'x'"),
        ({"model": [1]}, r"config: model must be a mapping, got \[1\]"),
        ({"data": "mnist"}, "config: data must be a mapping, got 'mnist'"),
        ({"sparsity": 3}, "config: sparsity must be a mapping, got 3"),
        ({1: {}}, "config: unknown key '1'"),
        ({"model": {1: 2}}, "config: unknown key 'model.1'"),
        ({"data": {"path": ""}}, "data.path must be a non-empty path"),
        ({"data": {"path": "a\0b"}}, "data.path must be a non-empty path without NUL characters"),
        ({"data": {"path": ["x"]}}, "data.path must be a path or null"),
    ],
)
def test_out_of_range_and_wrong_types_are_one_line(raw: dict, fragment: str) -> None:
    with pytest.raises(EslError, match=fragment) as error:
        config_from_dict(raw)
    assert "\n" not in str(error.value)


def test_the_largest_valid_values_are_accepted() -> None:
    config = config_from_dict(
        {
            "seed": 2**32 - 1,
            "model": {"hidden": [100_000], "timesteps": 4096, "w_bits": 24, "tet_lambda": 1, "t_max": 80},
            "train": {"epochs": 100_000, "batch_size": 65536, "threads": 1024},
            "sparsity": {"delta_t": 2**31 - 1, "layer_density": [[1, 0.5], [0, 0.2]]},
        }
    )
    assert config.seed == 2**32 - 1 and config.sparsity.layer_density == ((0, 0.2), (1, 0.5))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"train:\n  lr: 0.1\n  lr: 0.2\n",
            r"config .*c.yaml: not valid YAML \(duplicate key 'lr' at line 3",
        ),
        (b"model:\n  kind: lif\nmodel:\n  kind: lif\n", "duplicate key 'model' at line 3"),
        (b"seed: 1\n# caf\xe9\n", r"config .*c.yaml: not UTF-8 text \(byte 0xe9 at offset 13\)"),
        (b"model:\n  hidden: &h [8]\ntrain: *h\n", r"aliases are not supported \(found \*h\)"),
        (b"seed: 1" + b"0" * 5000 + b"\n", "not valid YAML .cannot read"),
        (b"seed: !!int ''\n", "not valid YAML .cannot read '' as int"),
    ],
    ids=["duplicate_key", "duplicate_section", "non_utf8", "alias", "int_digits", "odd_tag"],
)
def test_file_problems_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(EslError, match=message) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(EslError, match="is a folder, not a file"):
        load_config(tmp_path)


def test_hidden_takes_any_number_of_layers() -> None:
    assert config_from_dict({"model": {"hidden": [512, 256]}}).model.hidden == (512, 256)
    assert config_from_dict({"model": {"hidden": [7] * 63}}).model.hidden == (7,) * 63


def test_the_trainer_limit_counts_the_datas_inputs_and_classes() -> None:
    # without a data path the embedded MNIST subset's sizes are known when the config is read
    with pytest.raises(EslError, match=r"needs 832569344 dense weights \(784-1048576-10\)"):
        config_from_dict({"model": {"hidden": [2**20]}})
    # with one they come from the data: the training task checks them once it has loaded it
    config = config_from_dict({"data": {"path": "somewhere"}, "model": {"hidden": [2**20]}})
    check_mlp_shape(64, config.model.hidden, 3)  # 64·2^20 + 2^20·3 weights: within the limit
    with pytest.raises(EslError, match=r"^config: model.hidden =\[1048576\] needs 1048576000 dense weights "):
        check_mlp_shape(997, config.model.hidden, 3)
    with pytest.raises(EslError, match=r"\(784-800-200000-10\), more than the trainer's limit 134217728$"):
        check_mlp_shape(784, (800, 200000), 10)


def test_the_fashion_mnist_config_is_the_mnist_one_on_other_data() -> None:
    fashion = load_config(REPO / "configs" / "fashion_mnist_multispike_d0.1.yaml")
    mnist = load_config(REPO / "configs" / "mnist_multispike_d0.1.yaml")
    assert fashion.data.path == "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
    assert fashion == dataclasses.replace(mnist, data=fashion.data)
    assert fashion.data == dataclasses.replace(mnist.data, path=fashion.data.path)


def test_the_images_dataset_is_for_the_conv_kinds_and_needs_a_path() -> None:
    config = config_from_dict({"data": {"dataset": "images", "path": "x"}, "model": {"kind": "vggsnn"}})
    assert (config.data.dataset, config.model.kind) == ("images", "vggsnn")
    assert config_from_dict({"data": {"dataset": "images", "path": "x"}, "model": {"kind": "resnet19"}})
    with pytest.raises(
        EslError, match="model.kind 'lif' needs data.dataset mnist, not data.dataset 'images'"
    ):
        config_from_dict({"data": {"dataset": "images", "path": "x"}})
    with pytest.raises(EslError, match="data.dataset 'images' needs data.path"):
        config_from_dict({"data": {"dataset": "images"}, "model": {"kind": "vggsnn"}})
    fashion = load_config(REPO / "configs" / "fashion_mnist_vggsnn_d0.1.yaml")
    assert (fashion.data.dataset, fashion.model.kind, fashion.sparsity.density) == ("images", "vggsnn", 0.1)
    assert fashion.data.path == "/usr/share/datasets/fashion-mnist" and fashion.train.threads == 1
