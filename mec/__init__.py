"""Hierarchical multi-agent reinforcement learning for mobile edge computing: simulator, baselines, agents."""

__version__ = "0.1.0"
