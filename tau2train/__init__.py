"""tau2train: compose, validate and launch τ²-bench RL experiments on AReaL.

Sub-packages, by layer (each imports only the layers below it; tests/test_layout.py checks):
  schemas   typed dataclasses of every config and record (AReaL's PPOConfig + ours)
  records   files runs leave behind: run-directory layout, job and user-sim records
  config    composition (Hydra), registration, validation, the τ² catalog, the field reference
  rollout   what AReaL's workers run: the τ² workflow, episodes, rewards, datasets
  reports   tables and reports read from run records
  launch    running and submitting: local, Slurm, sweeps, train and eval modes, the plan
  user_sim  the user simulator's SGLang server (tau2train-user-sim)
  run       the entry point: python -m tau2train.run / tau2train

Importing tau2 (through litellm) would fetch a model price map from the network unless
LITELLM_LOCAL_MODEL_COST_MAP is set; it is set here, before any module of ours imports tau2.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
