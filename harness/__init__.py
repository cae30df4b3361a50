"""Benchmarking and hyperparameter-sweep harness for GAN training methods."""

__version__ = "0.1.0"
