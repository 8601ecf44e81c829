"""The study's environments: phase 1 and phase 2 as RLlib MultiAgentEnvs over mec.simulator."""

from mec.envs.mec_env import MECEnv, scheduler_id, ue_id

__all__ = ["MECEnv", "scheduler_id", "ue_id"]
