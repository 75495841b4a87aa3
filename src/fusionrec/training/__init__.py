"""Training of torch models: one Trainer for all of them, and the protocol of what it trains."""

from fusionrec.training.task import Trainable, TrainingTask
from fusionrec.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainable", "Trainer", "TrainingTask"]
