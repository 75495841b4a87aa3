"""Training of torch models: one Trainer for all of them."""

from fusionrec.training.trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
