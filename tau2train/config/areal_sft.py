"""`mode=sft data=areal_tau2`: the released AReaL-tau2-data SFT file, loaded and checked before
any trainer starts. Every line must parse as an SFT example (tau2train.records.areal_sft) of a
domain tau2 has; the first that does not is one `ConfigError` naming the file and the line.
Then the examples of `data.domains` are kept, only the correct ones (`metadata.correct == 1`)
unless `sft.correct_only=false`."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tau2train.config.areal_tau2 import check_domains, read_lines, required_file, tau2_domain
from tau2train.config.errors import ConfigError
from tau2train.records import areal_sft as layout


@dataclass(frozen=True)
class SftFile:
    """The checked SFT file: the examples kept and what the plan shows."""

    file: Path
    examples: tuple[layout.Example, ...]
    total: dict[str, int]  # lines per domain in the whole file
    kept: dict[str, int]  # examples kept per domain (chosen domains, correct filter)
    correct_only: bool


def load(path: str | None, domains: list[str] | None, correct_only: bool) -> SftFile:
    """The examples of `domains` (None = every domain in the file) of the SFT file under
    `path`, the correct ones only if `correct_only`."""
    file = required_file(path, layout.SFT_FILE)
    everything = _load_file(str(file.resolve()), file.stat().st_mtime_ns)
    check_domains(domains, dict(Counter(e.domain for e in everything)), file)
    kept = tuple(
        e for e in everything
        if (domains is None or e.domain in domains) and (e.correct == 1 or not correct_only)
    )
    if not kept:
        raise ConfigError(
            "sft.correct_only", correct_only,
            f"{file} has no correct (metadata.correct=1) examples of {', '.join(domains or ['any domain'])}",
            fix="sft.correct_only=false to train on every example, or pick other data.domains",
        )
    return SftFile(file, kept, dict(Counter(e.domain for e in everything)),
                  dict(Counter(e.domain for e in kept)), correct_only)


def summary(loaded: SftFile) -> str:
    """One line for the plan: examples kept of the file's, per domain."""
    chosen = sorted({e.domain for e in loaded.examples})
    per_domain = ", ".join(f"{d} {loaded.kept[d]}/{loaded.total[d]}" for d in chosen)
    skipped = sorted(set(loaded.total) - set(chosen))
    which = "metadata.correct=1 only" if loaded.correct_only else "correct and failed"
    return (f"{len(loaded.examples)} SFT examples kept ({which}; kept/in file: {per_domain}"
            + (f"; left out: {', '.join(skipped)}" if skipped else "") + ")")


@functools.lru_cache(maxsize=4)
def _load_file(file: str, mtime_ns: int) -> tuple[layout.Example, ...]:
    """Every example of the file, each checked (cached per file version: validation, the plan
    and the trainer call share one load)."""
    def example(number: int, text: str, known: set[str]) -> layout.Example:
        parsed = layout.parse_example(text, number)
        tau2_domain(parsed.domain, known)
        return parsed

    return read_lines(file, example, "examples")
