"""tau2train: compose, validate and launch τ²-bench RL experiments on AReaL.

Sub-packages, by layer (each imports only some of the layers above it, named in
tests/test_layout.py's ALLOWED, which checks it; docs/development.md has the table):
  compat    every reach past an upstream library's public API (tau2, AReaL, submitit, Hydra)
  schemas   typed dataclasses of every config and record (AReaL's PPOConfig + ours)
  records   files runs leave behind: run-directory layout, job and user-sim records
  serving   small models served on CPU: the tiny Qwen3, the CPU inference server, its worker
  config    composition (Hydra), registration, validation, the τ² catalog, the field reference
  rollout   what AReaL's workers run: the τ² workflow, episodes, rewards, the group filter
  reports   tables and reports read from run records
  user_sim  the user simulator's SGLang server (tau2train-user-sim)
  launch    running and submitting: local, Slurm, sweeps, the modes, the plan, the trainer
  run       the entry point: python -m tau2train.run / tau2train

Importing tau2 (through litellm) would fetch a model price map from the network unless
LITELLM_LOCAL_MODEL_COST_MAP is set; it is set here, before any module of ours imports tau2.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
