"""What AReaL's trainers print, read back: the stats table its StatsLogger logs after each step."""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# a step's number and the run's step count
STEP_DONE = re.compile(r"Train step (\d+)/(\d+) done")


def step_stats(log: str) -> dict[int, dict[str, float]]:
    """AReaL's StatsLogger tables, by global step (1-based, as it logs them); a table still
    being written (a log read while the run goes on) is left out until it is whole."""
    stats: dict[int, dict[str, float]] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        found = STEP_DONE.search(line)
        if not found:
            continue
        table: dict[str, float] = {}
        for row in lines[i + 1:]:
            if row.startswith("╘"):
                stats[int(found.group(1))] = table
                break
            if row.startswith("│"):
                cells = [c.strip() for c in row.strip("│").split("│")]
                for key, value in zip(cells[::2], cells[1::2]):
                    if key:
                        table[key] = float(value)
    return stats
