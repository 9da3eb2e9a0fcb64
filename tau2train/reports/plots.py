"""The reports' plots: a matplotlib figure without a display, saved as one PNG written whole
or not at all."""

from __future__ import annotations

import io
from pathlib import Path

from tau2train.records.files import write_atomic


def figure(figsize: tuple[float, float]):
    """(fig, ax) on matplotlib's file-only backend (no display on a login or compute node)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def save_png(fig, path: Path) -> Path:
    """`fig` as `path`, written atomically; the figure is closed either way."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    png = io.BytesIO()
    try:
        fig.savefig(png, format="png", dpi=100)
    finally:
        plt.close(fig)
    return write_atomic(path, png.getvalue())


def reward_by_step_png(rewards: dict[int, float], path: Path, title: str) -> Path | None:
    """Mean episode reward against the RL step, as a PNG (None when no step was logged)."""
    if not rewards:
        return None
    fig, ax = figure((6, 3.5))
    steps = sorted(rewards)
    ax.plot(steps, [rewards[s] for s in steps], marker="o")
    ax.set_xlabel("RL step")
    ax.set_ylabel("mean episode reward")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return save_png(fig, path)
