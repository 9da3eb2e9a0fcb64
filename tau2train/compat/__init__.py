"""Every place tau2train reaches past an upstream library's public API, one module per library.

Each module names what it relies on, and tests/test_compat.py holds a guard per patch that
fails, saying what changed, when an upgrade of that library moves it (as
`tau2train.rollout.fast_env` checks tau2's environment layout before it replaces anything):

- `tau2`: the registry entry a fast or snapshot environment replaces (`Registry._domains`),
  the `generate` name tau2's player modules and NL judge call, routed to a `Chat`, where tau2
  reads its data, retail's toolkit class, and what a fast environment builds on (a domain
  constructor's `db=`, the DB and DB hash an environment reaches through its tools);
- `areal`: the logging root AReaL's `getLogger` swaps in, the rollout task and stats scope
  AReaL's workflow context holds (`areal.infra.workflow_context`), stats reported as sums, a
  failed episode dropped alone, the rollout worker's server command, the FSDP engine's
  logits, and PPOTrainer's private hooks (`_init_scheduler`, `_ensure_proxy_started`) that
  tau2train's trainer overrides through `with_trainer_hooks`;
- `submitit`: the executor class hydra-submitit-launcher builds inside `launch`, and
  submitit's sbatch renderer (a dry run's preview);
- `hydra`: Hydra's internal app object, callbacks and basic sweeper (`hydra._internal`);
- `ray`: the GCS's node and actor tables without Ray's dashboard (`ray._raylet.GcsClient`,
  `ray._private.state`), for cluster=ray's checks and its host-loss watch;
- `areal_ray`: AReaL's Ray scheduler made to fork workers and start the rollout proxies.

The package imports nothing itself: the rollout side (AReaL's workers) loads only `tau2` and
`areal` from here, never Hydra or submitit.
"""
