"""tau2train: compose, validate and launch τ²-bench RL experiments on AReaL.

Importing tau2 (through litellm) would fetch a model price map from the network unless
LITELLM_LOCAL_MODEL_COST_MAP is set, and tau2 logs through loguru at import and on every
episode step; both are settled here, before any module of ours imports tau2. An episode's
record (RunInfo) carries everything its reader needs; `loguru.logger.enable("tau2")` brings
tau2's own lines back.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from loguru import logger  # noqa: E402

logger.disable("tau2")
