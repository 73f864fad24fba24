"""ESL sparse training of LIF networks with quantisation-aware training (imports torch).

Entry points::

    from esl_hw.train import load_config, default_config, train, export_run
    result = train(load_config("configs/demo.yaml"), "runs/demo")
    model = export_run(result.run_dir)          # an esl_hw.artifact.Model

    result = train(config, "runs/demo", resume=True)   # continue a killed run exactly

Modules: ``config`` (strict YAML schema), ``sparse`` (ESL engine for any model: masks,
prune-and-regrow, DDP-safe), ``sparse_rules`` (ER/ERK/uniform densities, prune and grow rules),
``neurons`` (LIF step and fused sequence), ``model`` (``LIFNet``: float, QAT and exact integer
modes), ``single_spike`` (Mostafa's temporal-coding network), ``checkpoint`` (atomic checkpoints,
resume), ``loop`` (training), ``export`` (run folder to artifact, evaluation helpers).
"""

from esl_hw.train.config import Config, config_from_dict, default_config, load_config
from esl_hw.train.export import (
    evaluate_float,
    evaluate_integer,
    export_run,
    integer_predictions,
    load_run,
    model_from_net,
)
from esl_hw.train.loop import TrainResult, train
from esl_hw.train.model import LIFNet
from esl_hw.train.single_spike import SingleSpikeNet
from esl_hw.train.sparse import SparseEngine
from esl_hw.train.sparse_rules import GROW_RULES, PRUNE_RULES

__all__ = [
    "GROW_RULES",
    "PRUNE_RULES",
    "Config",
    "LIFNet",
    "SingleSpikeNet",
    "SparseEngine",
    "TrainResult",
    "config_from_dict",
    "default_config",
    "evaluate_float",
    "evaluate_integer",
    "export_run",
    "integer_predictions",
    "load_config",
    "load_run",
    "model_from_net",
    "train",
]
