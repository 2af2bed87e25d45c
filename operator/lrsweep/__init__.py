"""LRSweep: find the learning rate of a training job, on Kubernetes or locally."""

__version__ = "0.1.0"
