"""schemas.task_subset.scored_task_ids: the one rule of which tasks an evaluation scores."""

from __future__ import annotations

from tau2train.schemas import scored_task_ids

SPLIT = ["0", "1", "2", "3", "4", "5"]


def test_every_task_of_the_split_when_nothing_narrows_it():
    assert scored_task_ids(SPLIT) == SPLIT
    assert scored_task_ids(SPLIT, None, None, 0) == SPLIT


def test_domain_tasks_then_task_ids_then_the_first_num_tasks_in_the_splits_order():
    assert scored_task_ids(SPLIT, ["5", "1", "3", "4"]) == ["1", "3", "4", "5"]
    assert scored_task_ids(SPLIT, ["5", "1", "3", "4"], ["4", "0", "1"]) == ["1", "4"]
    assert scored_task_ids(SPLIT, ["5", "1", "3", "4"], None, 2) == ["1", "3"]
    assert scored_task_ids(SPLIT, None, ["5", "2", "3"], 2) == ["2", "3"]
    assert scored_task_ids(SPLIT, None, [], None) == []
    assert scored_task_ids(SPLIT, None, None, 10) == SPLIT
