"""The study's environments: phase 1 and phase 2 as RLlib MultiAgentEnvs over mec.simulator.

Other views of the same envs: mec.envs.pettingzoo_env (PettingZoo AEC and Parallel) and mec.envs.gym_env (a
single-agent gymnasium view, registered here as mec/Phase1-v0 and mec/Phase2-v0); see docs/environments.md.
"""

from mec.envs.mec_env import MECEnv, scheduler_id, ue_id
from mec.envs.gym_env import register_envs

register_envs()

__all__ = ["MECEnv", "scheduler_id", "ue_id"]
