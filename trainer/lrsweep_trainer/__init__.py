"""LRSweep's trainer: built-in tasks, the training loop, and the reporting API
(`lrsweep_trainer.report`) for users' own scripts. Implements docs/contract.md."""

__version__ = "0.1.0"
