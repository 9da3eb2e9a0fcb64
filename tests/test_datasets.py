"""τ² task splits as AReaL datasets: the rows the workflow reads, padded as upstream does."""

from __future__ import annotations

from collections import Counter

import pytest

from tau2train.rollout.datasets import task_rows, tau2_dataset
from tau2train.rollout.episode import UnknownTask


def test_a_small_split_is_repeated_whole_up_to_the_minimum():
    rows = task_rows("airline", "train", min_size=128)  # 30 tasks
    assert len(rows) == 150  # five whole copies, never a partial one
    assert set(Counter(r["task_id"] for r in rows).values()) == {5}
    assert {r["split"] for r in rows} == {"train"}


def test_a_split_at_least_the_minimum_is_kept_as_is():
    assert len(task_rows("retail", "train", min_size=10)) == 74
    assert len(task_rows("retail", "train", min_size=0)) == 74


def test_all_means_every_task_and_rows_find_their_task():
    dataset = tau2_dataset("mock", "all", min_size=0)
    assert len(dataset) == 9
    assert dataset[0] == {"task_id": "create_task_1", "split": "all"}


def test_an_unknown_split_is_a_clear_error():
    with pytest.raises(UnknownTask, match="no task split 'dev'"):
        task_rows("airline", "dev")
