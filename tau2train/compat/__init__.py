"""Every place tau2train reaches past an upstream library's public API, one module per library.

Each module names what it relies on, and tests/test_compat.py holds a guard per patch that
fails, saying what changed, when an upgrade of that library moves it (as
`tau2train.rollout.fast_env` checks tau2's environment layout before it replaces anything):

- `tau2`: the registry entry a fast or snapshot environment replaces (`Registry._domains`),
  and the `generate` name tau2's player modules call, routed to a `Chat`;
- `areal`: the logging root AReaL's `getLogger` swaps in, and the rollout task and stats
  scope AReaL's workflow context holds (`areal.infra.workflow_context`);
- `submitit`: the executor class hydra-submitit-launcher builds inside `launch`, and
  submitit's sbatch renderer (a dry run's preview);
- `hydra`: Hydra's internal app object, callbacks and basic sweeper (`hydra._internal`).

The package imports nothing itself: the rollout side (AReaL's workers) loads only `tau2` and
`areal` from here, never Hydra or submitit.
"""
