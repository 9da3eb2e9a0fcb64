"""What this rollout worker notes per GRPO group until the group is done with: a bounded table
keyed by AReaL's task id (one task: one group of episodes), which AReaL's workflow context
holds both while the group's episodes run and when it calls the group filter."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

Item = TypeVar("Item")


class GroupTable(Generic[Item]):
    """Items noted per AReaL task id, in the order noted. Thread-safe; holds at most
    `capacity` tasks, the first noted pushed out first (a group AReaL drops before it is done
    with, e.g. one all of whose episodes failed, leaves its entry behind until then)."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._by_task: OrderedDict[int, list[Item]] = OrderedDict()

    def add(self, task_id: int | None, item: Item, complete_at: int | None = None) -> list[Item] | None:
        """Note `item` for the task (no-op for None: not a training rollout). With
        `complete_at`: once the task holds that many items, they leave the table and are
        returned; None before (and always without it)."""
        if task_id is None:
            return None
        with self._lock:
            items = self._by_task.get(task_id, [])
            items.append(item)
            if complete_at is not None and len(items) >= complete_at:
                self._by_task.pop(task_id, None)
                return items
            self._by_task[task_id] = items
            while len(self._by_task) > self.capacity:
                self._by_task.popitem(last=False)
            return None

    def pop(self, task_id: int | None) -> list[Item]:
        """The items noted for the task (none: []), which leave the table."""
        if task_id is None:
            return []
        with self._lock:
            return self._by_task.pop(task_id, [])

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_task)
