"""ESL sparse training of LIF networks with quantisation-aware training (imports torch).

Entry points::

    from esl_hw.train import load_config, default_config, train, export_run
    result = train(load_config("configs/demo.yaml"), "runs/demo")
    model = export_run(result.run_dir)          # an esl_hw.artifact.Model

Modules: ``config`` (strict YAML schema), ``sparse`` (ESL engine: ER masks, prune-and-regrow),
``model`` (``LIFNet``: float, QAT and exact integer modes), ``loop`` (training), ``export``
(run folder to artifact, evaluation helpers).
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
from esl_hw.train.sparse import SparseEngine

__all__ = [
    "Config",
    "LIFNet",
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
