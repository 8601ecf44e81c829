"""MAPPO on RLlib's new API stack, one shared policy per role: the backend's one home.

  training.py  the PPOConfig of a job, the training loop, restoring modules from a checkpoint
  sampler.py   the batched fleet sampler (an RLlib MultiAgentEnvRunner): B episodes per sample() call as arrays
  modules.py   the role modules (TorchRLModule, per-row actors, set-encoder critic), the per-row PPO learner and
               the marginal-credit learner connector
  policy.py    trained role modules as a batched `act(SlotState) -> Decisions` policy for evaluation
The run directory the backend writes (metrics, checkpoints, resume) is mec.runs', shared with mec.backends.sb3.
"""
