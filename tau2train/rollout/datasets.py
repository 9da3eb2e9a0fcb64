"""τ² task splits as the datasets AReaL's trainer consumes: one row per task, {task_id, split}
(AReaL-tau2-data's rows carry more: tau2train.records.areal_tau2).

Small splits are repeated whole until they reach a minimum size (upstream: 128), so a batch
of the configured size can always be drawn and every task appears equally often.
"""

from __future__ import annotations

from datasets import Dataset

from tau2train.rollout.episode import split_tasks


def repeated(rows: list[dict], min_size: int = 0) -> list[dict]:
    """`rows` repeated whole until there are at least `min_size`."""
    repeats = max(1, -(-min_size // len(rows))) if rows else 0
    return rows * repeats


def task_rows(domain: str, split: str, min_size: int = 0, only: list[str] | None = None) -> list[dict[str, str]]:
    """One row per task of `split` ("all" = every task; `only` these ids when given),
    repeated to at least `min_size`."""
    return repeated([{"task_id": task.id, "split": split} for task in split_tasks(domain, split, only)], min_size)


def tau2_dataset(domain: str, split: str, min_size: int = 0, only: list[str] | None = None) -> Dataset:
    return Dataset.from_list(task_rows(domain, split, min_size, only))


def rows_dataset(rows: list[dict], min_size: int = 0) -> Dataset:
    """Rows made elsewhere (AReaL-tau2-data's, tau2train.records.areal_tau2.dataset_row) as
    AReaL's dataset, repeated like a τ² split."""
    return Dataset.from_list(repeated(rows, min_size))
