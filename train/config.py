"""Training configuration: a strict YAML schema mapped onto frozen dataclasses.

Every key is checked: an unknown key, a value of the wrong type or out of range raises
:class:`esl_hw.errors.EslError` naming the key, e.g. ``config: unknown key 'model.hiden'``.
Missing keys take the defaults below, which are the tuned demo configuration (``configs/demo.yaml``).

Sparsity is given either as an overall ``density`` (distributed over the layers with the
Erdős–Rényi rule, as RigL's ER scaling) or as the ER factor ``epsilon`` directly, never both.

Every number must be finite (NaN and infinities are refused), and sizes, counts and widths are
bounded by :mod:`esl_hw.limits` (e.g. ``model.hidden`` by the neurons per layer and, for the MLP
kinds, by the dense weights the trainer allocates, counted with the data's input size and class
count: :func:`check_mlp_shape`). The file is read by :mod:`esl_hw.safe_yaml`:
a duplicate key, an alias or a file that is not UTF-8 is refused with one line.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esl_hw import limits
from esl_hw.datasets import MNIST_CLASSES, MNIST_INPUTS
from esl_hw.errors import EslError
from esl_hw.limits import shown
from esl_hw.rewiring import DEFAULT_SEED
from esl_hw.safe_yaml import dump_yaml, load_yaml
from esl_hw.train.hardware_rewiring import check_lanes, check_seed
from esl_hw.train.redistribution import REDISTRIBUTE_NAMES
from esl_hw.train.sparse_rules import GROW_RULES, HARDWARE_RANDOM, INIT_NAMES, PRUNE_RULES

OPTIMIZER_NAMES = ("adam", "sgd")
MODEL_KINDS = ("lif", "single_spike", "vggsnn", "resnet19")
CONV_KINDS = ("vggsnn", "resnet19")
DATASETS = ("mnist", "images", "cifar10", "cifar100", "nmnist", "dvs_cifar10")
SURROGATE_NAMES = ("fast_sigmoid", "atan")
LR_SCHEDULE_NAMES = ("constant", "cosine")
DEVICE_NAMES = ("cpu", "cuda", "auto")
#: The largest ``data.augment_shift`` (pixels per axis).
MAX_AUGMENT_SHIFT = 8
#: ``train.weight_grad``: the input layer's weight gradient exact (float32) or mixed precision.
WEIGHT_GRAD_NAMES = ("float32", "bfloat16")
#: The MLP kinds; their input size and class count come from the data (:func:`check_mlp_shape`).
MLP_KINDS = ("lif", "single_spike")


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from; ``path=None`` is the embedded MNIST subset (``dataset: mnist`` only).

    ``dataset``: ``mnist`` (images in IDX files or ``train.npz``/``test.npz``, MNIST or any other
    set: the MLP's input size and class count come from the data, :func:`esl_hw.datasets.load_dataset`),
    ``images`` (the same IDX or NPZ folders for the conv kinds: images ``[H, W]`` or channels-last
    ``[H, W, C]`` with ``C <= 4``, :func:`esl_hw.train.vision_data.load_images`),
    ``cifar10``/``cifar100`` (python batches), ``nmnist`` or
    ``dvs_cifar10`` (event recordings binned into ``model.timesteps`` frames, resized to
    ``frame_size`` when given); see :mod:`esl_hw.train.vision_data`.
    ``augment_shift`` (``model.kind: lif``, image data): each training image moved by a random
    ``−s..s`` pixels per axis every time it is drawn (:mod:`esl_hw.train.augment`); 0 (default): as is.
    """

    dataset: str = "mnist"
    path: str | None = None
    train_samples: int | None = None
    val_fraction: float = 0.1
    frame_size: int | None = None
    augment_shift: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """``kind: lif``: LIF MLP ``n_in-hidden…-classes`` on the integer grid (``leak_shift=None``: no
    leak); ``n_in`` and ``classes`` come from the data, ``hidden`` lists any number of layers.

    ``kind: single_spike``: Mostafa's temporal-coding network (:mod:`esl_hw.train.single_spike`):
    inputs arrive in ``levels`` time slots up to ``t_max``; ``weight_cost`` is the factor ``K`` of the
    weight-sum cost; the LIF and quantisation keys do not apply to it.

    ``kind: vggsnn`` / ``resnet19``: convolutional LIF networks (:mod:`esl_hw.train.conv`) trained with
    the TET loss (weight ``tet_lambda``); ``width`` scales every channel count; ``timesteps`` is ``T``.
    """

    kind: str = "lif"
    hidden: tuple[int, ...] = (128,)
    timesteps: int = 8
    w_bits: int = 8
    v_bits: int = 16
    leak_shift: int | None = 2
    threshold: float = 0.5
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 5.0
    levels: int = 8
    t_max: float = 1.0
    weight_cost: float = 1.0
    width: float = 1.0
    tet_lambda: float = 0.05


@dataclass(frozen=True)
class SparsityConfig:
    """ESL: sparse initialisation, then every ``delta_t`` iterations until ``t_end`` prune and regrow.

    ``init`` (``er``, ``erk``, ``uniform``) spreads ``density`` over the layers; ``dense_layers`` are
    kept dense and ``layer_density`` (YAML mapping ``{layer index: density}``) fixes single layers.
    ``grow: hardware-random`` (LIF MLP only, with ``prune: magnitude``) is the chip's rewiring for a
    core of ``lanes`` lanes (a power of two), every layer's LFSR starting from ``lfsr_seed``.
    ``redistribute`` (``none``, ``magnitude``, ``momentum``) lets density move between layers at
    constant total (:mod:`esl_hw.train.redistribution`); ``none`` keeps every layer's density.
    """

    density: float | None = 0.1
    epsilon: float | None = None
    init: str = "er"
    dense_layers: tuple[int, ...] = ()
    layer_density: tuple[tuple[int, float], ...] = ()
    prune: str = "set"
    grow: str = "random"
    alpha: float = 0.3
    delta_t: int = 25
    t_end: float = 0.75
    lanes: int = 1
    lfsr_seed: int = DEFAULT_SEED
    redistribute: str = "none"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: ``epochs`` passes over the training split in batches of ``batch_size``.

    ``lr_schedule: cosine`` anneals the learning rate per iteration as ``lr · (1 + cos(π i / N))/2``.
    ``device``: ``cpu`` (default), ``cuda`` (error when torch sees no GPU) or ``auto`` (cuda when
    available). Masks and the integer contract do not depend on it; float rounding may.
    ``weight_grad`` (``model.kind: lif``): ``float32`` (default) computes the input layer's weight
    gradient from the spike trains' changes, exact to float rounding; ``bfloat16`` as one dense
    product in bfloat16 with float32 accumulation (mixed precision: about 2^−8 relative error per
    entry, on the CPU's AMX units several times faster; :mod:`esl_hw.train.events`). The forward,
    the integer weights and the contract are the same either way.
    ``teacher`` (``model.kind: lif``): a completed run folder of a LIF MLP on the same data; its soft
    targets at temperature ``teacher_temperature`` weigh ``teacher_weight`` in the loss
    (knowledge distillation, :mod:`esl_hw.train.distill`); ``null`` (default) trains on the labels.
    """

    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.005
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    threads: int | None = None
    device: str = "cpu"
    weight_grad: str = "float32"
    teacher: str | None = None
    teacher_temperature: float = 4.0
    teacher_weight: float = 0.5


@dataclass(frozen=True)
class Config:
    """The whole run configuration."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "sparsity": SparsityConfig,
    "train": TrainConfig,
}


def _fail(key: str, problem: str) -> EslError:
    return EslError(f"config: {key} {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, key: str, low: int | None = None, high: int | None = None) -> int:
    if not _is_int(value):
        raise _fail(key, f"must be an integer, got {shown(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"{'' if low is None else low}..{'' if high is None else high}"
        raise _fail(key, f"={value} outside {bounds}")
    return value


def _float(value: Any, key: str) -> float:
    """``value`` as a finite float; an int converts (one beyond float's range is refused)."""
    if not (_is_int(value) or isinstance(value, float)):
        raise _fail(key, f"must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _fail(key, f"must be a finite number, got {shown(value)}")
    return number


def _choice(value: Any, key: str, names: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in names:
        raise _fail(key, f"={shown(value)} unknown (known: {', '.join(names)})")
    return value


def _optional(value: Any, key: str, convert: Any, *args: Any) -> Any:
    return None if value is None else convert(value, key, *args)


def _path(value: Any, key: str) -> str:
    """A non-empty path without NUL characters, as a string."""
    if not isinstance(value, str | os.PathLike):
        raise _fail(key, f"must be a path or null, got {shown(value)}")
    if not str(value) or "\0" in str(value):
        raise _fail(key, f"must be a non-empty path without NUL characters, got {shown(str(value))}")
    return str(value)


def _check_data(raw: dict[str, Any]) -> DataConfig:
    path = _optional(raw["path"], "data.path", _path)
    fraction = _float(raw["val_fraction"], "data.val_fraction")
    if not 0.0 <= fraction < 1.0:
        raise _fail("data.val_fraction", f"={fraction} outside [0, 1)")
    return DataConfig(
        dataset=_choice(raw["dataset"], "data.dataset", DATASETS),
        frame_size=_optional(raw["frame_size"], "data.frame_size", _int, 4, 1024),
        path=path,
        train_samples=_optional(raw["train_samples"], "data.train_samples", _int, 2, 2**31),
        val_fraction=fraction,
        augment_shift=_int(raw["augment_shift"], "data.augment_shift", 0, MAX_AUGMENT_SHIFT),
    )


def check_mlp_shape(n_inputs: int, hidden: tuple[int, ...], classes: int) -> None:
    """Raise :class:`EslError` unless the MLP ``n_inputs - hidden… - classes`` has at most
    :data:`esl_hw.limits.TRAIN_MAX_DENSE_WEIGHTS` dense weights ``n_inputs·h0 + h0·h1 + … +
    h_last·classes`` (the trainer allocates each several times). The training task checks it with the
    data's sizes before anything is encoded; :func:`config_from_dict` already with the embedded MNIST
    subset's (784 inputs, 10 classes) when the config names no data path."""
    shape = (n_inputs, *hidden, classes)
    weights = sum(a * b for a, b in zip(shape[:-1], shape[1:], strict=True))
    if weights > limits.TRAIN_MAX_DENSE_WEIGHTS:
        raise _fail(
            "model.hidden",
            f"={list(hidden)} needs {weights} dense weights ({'-'.join(map(str, shape))}), more than "
            f"the trainer's limit {limits.TRAIN_MAX_DENSE_WEIGHTS}",
        )


def _hidden(value: Any) -> tuple[int, ...]:
    """Hidden layer sizes (any number of layers below :data:`esl_hw.limits.MAX_LAYERS`), each at most
    the neurons per layer."""
    if not isinstance(value, list | tuple) or not value:
        raise _fail("model.hidden", f"must be a non-empty list of layer sizes, got {shown(value)}")
    if len(value) >= limits.MAX_LAYERS:
        raise _fail("model.hidden", f"has {len(value)} layers, at most {limits.MAX_LAYERS - 1}")
    return tuple(
        _int(size, f"model.hidden[{i}]", 1, limits.MAX_NEURONS_PER_LAYER) for i, size in enumerate(value)
    )


#: Upper bounds of the float settings that have no natural one: far beyond any useful value, they
#: catch a typo or a damaged file before it reaches the trainer (a threshold of 1e19 would
#: quantise to nothing representable).
MAX_SCALE = 1000.0
MAX_LEARNING_RATE = 100.0


def _positive(value: Any, key: str, high: float | None = None) -> float:
    """A finite number in ``(0, high]`` (``(0, inf)`` without ``high``)."""
    number = _float(value, key)
    if number <= 0:
        raise _fail(key, f"={number} must be positive")
    if high is not None and number > high:
        raise _fail(key, f"={number} outside (0, {high}]")
    return number


def _fraction(value: Any, key: str) -> float:
    """A finite number in ``[0, 1]``."""
    number = _float(value, key)
    if not 0.0 <= number <= 1.0:
        raise _fail(key, f"={number} outside [0, 1]")
    return number


def _check_model(raw: dict[str, Any]) -> ModelConfig:
    kind = _choice(raw["kind"], "model.kind", MODEL_KINDS)
    v_bits = _int(raw["v_bits"], "model.v_bits", *limits.V_BITS)
    weight_cost = _float(raw["weight_cost"], "model.weight_cost")
    if not 0 <= weight_cost <= MAX_SCALE:
        raise _fail("model.weight_cost", f"={weight_cost} outside [0, {MAX_SCALE}]")
    width = _float(raw["width"], "model.width")
    if not 0 < width <= 4:
        raise _fail("model.width", f"={width} outside (0, 4]")
    return ModelConfig(
        kind=kind,
        width=width,
        tet_lambda=_fraction(raw["tet_lambda"], "model.tet_lambda"),
        levels=_int(raw["levels"], "model.levels", 1, 256),
        t_max=_positive(raw["t_max"], "model.t_max", limits.TRAIN_MAX_T_MAX),
        weight_cost=weight_cost,
        hidden=_hidden(raw["hidden"]),
        timesteps=_int(raw["timesteps"], "model.timesteps", *limits.TIMESTEPS),
        w_bits=_int(raw["w_bits"], "model.w_bits", *limits.TRAIN_W_BITS),
        v_bits=v_bits,
        leak_shift=_optional(raw["leak_shift"], "model.leak_shift", _int, 1, v_bits - 1),
        threshold=_positive(raw["threshold"], "model.threshold", MAX_SCALE),
        surrogate=_choice(raw["surrogate"], "model.surrogate", SURROGATE_NAMES),
        surrogate_slope=_positive(raw["surrogate_slope"], "model.surrogate_slope", MAX_SCALE),
    )


def _dense_layers(value: Any, n_layers: int) -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise _fail("sparsity.dense_layers", f"must be a list of layer indices, got {shown(value)}")
    indices = tuple(
        _int(index, f"sparsity.dense_layers[{i}]", 0, n_layers - 1) for i, index in enumerate(value)
    )
    if len(set(indices)) != len(indices):
        raise _fail("sparsity.dense_layers", f"={list(indices)} lists a layer twice")
    return indices


def _layer_density(value: Any, n_layers: int) -> tuple[tuple[int, float], ...]:
    """``{layer: density}`` (or a list of ``[layer, density]`` pairs) as sorted pairs."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple):
        pairs = value
        for i, pair in enumerate(pairs):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise _fail(
                    f"sparsity.layer_density[{i}]", f"must be a pair [layer, density], got {shown(pair)}"
                )
    else:
        raise _fail("sparsity.layer_density", f"must be a mapping layer -> density, got {shown(value)}")
    result: dict[int, float] = {}
    for index, density in pairs:
        key = f"sparsity.layer_density[{shown(index)}]"
        _int(index, key, 0, n_layers - 1)
        if index in result:
            raise _fail(key, "is given twice")
        number = _float(density, key)
        if not 0.0 < number <= 1.0:
            raise _fail(key, f"={number} outside (0, 1]")
        result[index] = number
    return tuple(sorted(result.items()))


def _check_sparsity(raw: dict[str, Any], n_layers: int) -> SparsityConfig:
    density = _optional(raw["density"], "sparsity.density", _float)
    epsilon = _optional(raw["epsilon"], "sparsity.epsilon", _float)
    if (density is None) == (epsilon is None):
        raise EslError("config: give exactly one of sparsity.density and sparsity.epsilon")
    if density is not None and not 0.0 < density <= 1.0:
        raise _fail("sparsity.density", f"={density} outside (0, 1]")
    if epsilon is not None and epsilon <= 0:
        raise _fail("sparsity.epsilon", f"={epsilon} must be positive")
    t_end = _float(raw["t_end"], "sparsity.t_end")
    if not 0.0 < t_end <= 1.0:
        raise _fail("sparsity.t_end", f"={t_end} outside (0, 1]")
    prune = _choice(raw["prune"], "sparsity.prune", tuple(PRUNE_RULES))
    grow = _choice(raw["grow"], "sparsity.grow", tuple(GROW_RULES))
    if grow == HARDWARE_RANDOM and prune != "magnitude":
        raise _fail("sparsity.grow", f"={grow!r} needs sparsity.prune: magnitude, got {prune!r}")
    redistribute = _choice(raw["redistribute"], "sparsity.redistribute", REDISTRIBUTE_NAMES)
    if grow == HARDWARE_RANDOM and redistribute != "none":
        raise _fail(
            "sparsity.redistribute",
            f"={redistribute!r} cannot be used with sparsity.grow {HARDWARE_RANDOM!r}: the chip's rewiring "
            "keeps every layer's synapse count (use redistribute: none)",
        )
    try:
        lanes = check_lanes(raw["lanes"], "sparsity.lanes")
        lfsr_seed = check_seed(raw["lfsr_seed"], "sparsity.lfsr_seed")
    except EslError as error:
        raise EslError(f"config: {error}") from None
    return SparsityConfig(
        density=density,
        epsilon=epsilon,
        init=_choice(raw["init"], "sparsity.init", INIT_NAMES),
        layer_density=_layer_density(raw["layer_density"], n_layers),
        dense_layers=_dense_layers(raw["dense_layers"], n_layers),
        prune=prune,
        grow=grow,
        alpha=_fraction(raw["alpha"], "sparsity.alpha"),
        delta_t=_int(raw["delta_t"], "sparsity.delta_t", 1, limits.TRAIN_MAX_DELTA_T),
        t_end=t_end,
        lanes=lanes,
        lfsr_seed=lfsr_seed,
        redistribute=redistribute,
    )


def _check_train(raw: dict[str, Any]) -> TrainConfig:
    return TrainConfig(
        epochs=_int(raw["epochs"], "train.epochs", 1, limits.TRAIN_MAX_EPOCHS),
        batch_size=_int(raw["batch_size"], "train.batch_size", 1, limits.TRAIN_MAX_BATCH_SIZE),
        lr=_positive(raw["lr"], "train.lr", MAX_LEARNING_RATE),
        optimizer=_choice(raw["optimizer"], "train.optimizer", OPTIMIZER_NAMES),
        lr_schedule=_choice(raw["lr_schedule"], "train.lr_schedule", LR_SCHEDULE_NAMES),
        threads=_optional(raw["threads"], "train.threads", _int, 1, limits.TRAIN_MAX_THREADS),
        device=_choice(raw["device"], "train.device", DEVICE_NAMES),
        weight_grad=_choice(raw["weight_grad"], "train.weight_grad", WEIGHT_GRAD_NAMES),
        teacher=_optional(raw["teacher"], "train.teacher", _path),
        teacher_temperature=_positive(raw["teacher_temperature"], "train.teacher_temperature", 100.0),
        teacher_weight=_fraction(raw["teacher_weight"], "train.teacher_weight"),
    )


def _merge_section(name: str, defaults: Any, given: Any) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise _fail(name, f"must be a mapping, got {shown(given)}")
    known = {item.name for item in dataclasses.fields(defaults)}
    for key in given:
        if key not in known:
            raise EslError(f"config: unknown key '{name}.{key}'")
    merged = {key: getattr(defaults, key) for key in known}
    merged.update(given)
    if name == "sparsity" and "epsilon" in given and "density" not in given:
        merged["density"] = None
    return merged


def config_from_dict(raw: dict[str, Any] | None) -> Config:
    """Validate ``raw`` (a YAML mapping) over the defaults and return the frozen :class:`Config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise EslError(f"config: top level must be a mapping, got {type(raw).__name__}")
    for key in raw:
        if key != "seed" and key not in _SECTIONS:
            raise EslError(f"config: unknown key '{key}'")
    defaults = Config()
    sections = {name: _merge_section(name, getattr(defaults, name), raw.get(name)) for name in _SECTIONS}
    model = _check_model(sections["model"])
    data = _check_data(sections["data"])
    conv = model.kind in CONV_KINDS
    if conv == (data.dataset == "mnist"):
        need = "an image or event dataset" if conv else "data.dataset mnist"
        raise EslError(f"config: model.kind {model.kind!r} needs {need}, not data.dataset {data.dataset!r}")
    if data.dataset != "mnist" and data.path is None:
        raise EslError(f"config: data.dataset {data.dataset!r} needs data.path (a local folder)")
    if model.kind in MLP_KINDS and data.path is None:
        check_mlp_shape(MNIST_INPUTS, model.hidden, MNIST_CLASSES)
    n_layers = len(model.hidden) + 1 if not conv else 64
    sparsity = _check_sparsity(sections["sparsity"], n_layers)
    if sparsity.grow == HARDWARE_RANDOM and model.kind != "lif":
        raise _fail("sparsity.grow", f"={HARDWARE_RANDOM!r} needs model.kind 'lif', not {model.kind!r}")
    train = _check_train(sections["train"])
    if train.weight_grad != "float32" and model.kind != "lif":
        raise _fail("train.weight_grad", f"={train.weight_grad!r} needs model.kind 'lif', not {model.kind!r}")
    if train.teacher is not None and model.kind != "lif":
        raise _fail("train.teacher", f"needs model.kind 'lif', not {model.kind!r}")
    if data.augment_shift and model.kind != "lif":
        raise _fail("data.augment_shift", f"needs model.kind 'lif', not {model.kind!r}")
    if data.augment_shift and train.teacher is not None:
        raise _fail("data.augment_shift", "and train.teacher together: the teacher scores the images unmoved")
    return Config(
        seed=_int(raw.get("seed", defaults.seed), "seed", *limits.SEED),
        data=data,
        model=model,
        sparsity=sparsity,
        train=train,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the YAML file ``path`` (read by :func:`esl_hw.safe_yaml.load_yaml`)."""
    return config_from_dict(load_yaml(Path(path), "config"))


def default_config() -> Config:
    """The tuned demo configuration (the dataclass defaults, identical to ``configs/demo.yaml``)."""
    return Config()


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain YAML-ready mapping (tuples as lists) that :func:`config_from_dict` reads back."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        return value

    result = plain(dataclasses.asdict(config))
    result["sparsity"]["layer_density"] = dict(config.sparsity.layer_density)
    return result


def dump_config(config: Config) -> str:
    """The resolved configuration as YAML text."""
    return dump_yaml(config_to_dict(config))
