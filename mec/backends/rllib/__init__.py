"""MAPPO on RLlib's new API stack: the batched sampler (sampler.py)."""
