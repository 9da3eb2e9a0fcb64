"""Why a training episode was discarded: a failure outside the policy's control, so its reward
says nothing about the policy. The rollout records the cause in each episode's RunInfo
(`failure`) and on AReaL's stats tracker; reports count them."""

from __future__ import annotations

from enum import Enum


class Failure(str, Enum):
    USER_SIM = "user_sim"  # the user simulator failed after its retries
    TIMEOUT = "timeout"  # the episode ran past trainer.episode_timeout
    EVALUATOR = "evaluator"  # tau2's evaluator raised


FAILURES = [f.value for f in Failure]
