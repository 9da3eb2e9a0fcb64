"""tau2train.rollout.group_table: the one bounded per-group table of the rollout side (the
group filter's episode rewards, and the failures counted per group)."""

from __future__ import annotations

import threading

from tau2train.rollout.group_table import GroupTable


def test_items_are_kept_per_task_in_order_and_leave_when_popped():
    table: GroupTable[float] = GroupTable()
    table.add(1, 0.5)
    table.add(2, 1.0)
    table.add(1, 0.0)
    assert table.pop(1) == [0.5, 0.0] and table.pop(1) == []
    assert table.pop(2) == [1.0] and len(table) == 0


def test_no_task_id_notes_nothing():
    table: GroupTable[float] = GroupTable()
    assert table.add(None, 1.0) is None and table.pop(None) == [] and len(table) == 0


def test_a_group_complete_at_its_size_leaves_the_table_with_its_items():
    table: GroupTable[bool] = GroupTable()
    assert table.add(7, False, complete_at=3) is None
    assert table.add(7, True, complete_at=3) is None
    assert table.add(7, False, complete_at=3) == [False, True, False]
    assert len(table) == 0
    assert table.add(8, True, complete_at=1) == [True] and len(table) == 0


def test_the_first_noted_task_is_pushed_out_past_the_capacity():
    table: GroupTable[int] = GroupTable(capacity=2)
    table.add(1, 1)
    table.add(2, 2)
    table.add(1, 11)  # a later item does not make task 1 newer
    table.add(3, 3)
    assert len(table) == 2 and table.pop(1) == [] and table.pop(2) == [2] and table.pop(3) == [3]


def test_concurrent_episodes_of_a_group_complete_it_once():
    table: GroupTable[int] = GroupTable()
    completed = []

    def episode(i: int) -> None:
        done = table.add(5, i, complete_at=64)
        if done is not None:
            completed.append(sorted(done))

    threads = [threading.Thread(target=episode, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert completed == [list(range(64))] and len(table) == 0
