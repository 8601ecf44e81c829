"""MAPPO on RLlib's new API stack, one shared policy per role: the backend's one home.

  training.py  the PPOConfig of a job, the backend of the one training loop (mec.backends.driver), restoring
               modules from a checkpoint
  session.py   Ray's processes of a job: the session start, the reaping, the temp folders and the watchdog
  sampler.py   the batched fleet sampler (an RLlib MultiAgentEnvRunner): B episodes per sample() call as arrays
  modules.py   the role modules (TorchRLModule, per-row actors, set-encoder critic), the per-row PPO learner and
               the marginal-credit learner connector
  policy.py    trained role modules as a batched `act(SlotState) -> Decisions` policy for evaluation
The run directory the loop writes (metrics, checkpoints, resume) is mec.runs', shared with mec.backends.sb3.
"""
