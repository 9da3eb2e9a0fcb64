"""The rollout side: what runs inside AReaL's rollout workers (and `mode=eval`).

The τ² workflow AReaL calls, one episode through tau2's players, orchestrator and evaluator,
the rewards AReaL trains on, the group filter and what failures cost (group_filter.py,
lost_episodes.py), the datasets of task rows, fast copy-on-access environments and the
trajectories written to disk. It imports only tau2train.schemas, tau2train.records,
tau2train.compat and tau2 (never configuration, launch code, Hydra's launchers or submitit):
tests/test_layout.py checks that in a fresh interpreter.

tau2 logs through loguru at import and on every episode step; an episode's record (RunInfo)
carries everything its reader needs, so tau2's lines are off (`loguru.logger.enable("tau2")`
brings them back).
"""

from loguru import logger

logger.disable("tau2")
