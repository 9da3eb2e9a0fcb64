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
