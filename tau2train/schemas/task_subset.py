"""Which of a split's tasks an evaluation scores, over task ids alone: validation checks the
subset a config names (tau2train.config.validate.check_eval_tasks) and the evaluation plays it
(tau2train.launch.eval_contract.scored_tasks) by this one rule."""

from __future__ import annotations

from collections.abc import Sequence


def scored_task_ids(split: Sequence[str], domain_tasks: Sequence[str] | None = None,
                    task_ids: Sequence[str] | None = None, num_tasks: int | None = None) -> list[str]:
    """The ids of `split` (in its order) an evaluation scores: those of domain.tasks, then of
    eval.task_ids, then the first eval.num_tasks of them (None, or 0, for each: no limit)."""
    kept = [t for t in split if domain_tasks is None or t in domain_tasks]
    if task_ids is not None:
        kept = [t for t in kept if t in task_ids]
    return kept[:num_tasks] if num_tasks else kept
