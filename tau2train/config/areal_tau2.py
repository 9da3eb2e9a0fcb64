"""`data=areal_tau2`: the released AReaL-tau2-data RL file, loaded and checked before any GPU
starts. Every line must be a τ² Task tau2 accepts (evaluation_criteria a JSON string that
parses), name a domain tau2 has, and point at a snapshot that exists; the first line that
does not is one `ConfigError` naming the file and the line. The folder's layout and the row
format live in tau2train.records.areal_tau2 (the workflow reads the same rows)."""

from __future__ import annotations

import functools
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tau2train.config import catalog as tau2_catalog
from tau2train.config.errors import ConfigError
from tau2train.records import areal_tau2 as layout
from tau2train.schemas import ExperimentConfig

KEY = "data.path"
T = TypeVar("T")
FIX_ROW = "fix or remove that line (the file as released parses whole: re-download it if it was changed)"


@dataclass(frozen=True)
class RlFile:
    """The checked RL file: the dataset rows of the chosen domains and what the plan shows."""

    file: Path
    rows: tuple[dict[str, Any], ...]
    domain_rows: dict[str, int]  # rows per domain in the whole file
    snapshots: dict[str, int] = field(default_factory=dict)  # snapshot used -> rows on it (chosen domains)


def load(path: str | None, domains: list[str] | None) -> RlFile:
    """The rows of `domains` (None = every domain in the file) of the RL file under `path`."""
    file = required_file(path, layout.RL_FILE)
    everything = _load_file(str(file.resolve()), file.stat().st_mtime_ns)
    check_domains(domains, everything.domain_rows, file)
    if domains is None:
        return everything
    rows = tuple(r for r in everything.rows if r["domain"] in domains)
    return RlFile(file, rows, everything.domain_rows, dict(Counter(r["db_path"] for r in rows)))


def required_file(path: str | None, name: str) -> Path:
    """`<path>/<name>` of the dataset's folder, or one ConfigError on data.path saying what
    is missing and how to get it."""
    if not path:
        raise ConfigError(
            KEY, path, "data=areal_tau2 needs the dataset's folder",
            valid="the folder of inclusionAI/AReaL-tau2-data as downloaded (holding "
            f"{layout.RL_FILE} and {layout.DB_DIR}/)",
            fix=f"add {KEY}=/shared/AReaL-tau2-data",
        )
    folder = Path(path)
    file = folder / name
    if not folder.is_dir() or not file.is_file():
        raise ConfigError(
            KEY, path,
            "no such folder" if not folder.is_dir() else f"the folder has no {name}",
            valid=f"the dataset's folder as downloaded, holding {name}",
            fix="download inclusionAI/AReaL-tau2-data there (e.g. `huggingface-cli download "
            f"--repo-type dataset inclusionAI/AReaL-tau2-data --local-dir {path}`), or correct {KEY}",
        )
    return file


def check_domains(domains: list[str] | None, in_file: dict[str, int], file: Path) -> None:
    """data.domains must name domains the file has rows of (None: all of them)."""
    unknown = [d for d in domains or [] if d not in in_file]
    if unknown or domains == []:
        raise ConfigError(
            "data.domains", domains,
            f"{file} has no {unknown[0]} rows" if unknown else "no domain chosen: nothing to train on",
            valid=", ".join(f"{d} ({in_file[d]} rows)" for d in sorted(in_file)) + ", or null for all",
            fix="pick domains from that list, e.g. data.domains=[" + ",".join(sorted(in_file)) + "]",
        )

def trained_domains(exp: ExperimentConfig, loaded: RlFile | None) -> tuple[str, ...]:
    """The τ² domains a run's training rows come from: those of the RL file's rows `loaded`
    (data=areal_tau2), or the domain group's (data=tau2: None)."""
    if loaded is not None:
        return tuple(sorted({row["domain"] for row in loaded.rows}))
    return (exp.econfig.domain,)


def mixed_rows(loaded: RlFile, weights: dict[str, float], seed: int) -> list[dict[str, Any]]:
    """One epoch's rows: the file's own (no `weights`), or as many rows as the file has for
    the chosen domains, each domain's share its weight over the weights' sum. A domain's rows
    are repeated whole as often as its share allows, the rest drawn from them at random
    (seeded, without replacement), so no row is drawn twice more often than another."""
    if not weights:
        return list(loaded.rows)
    check_weights(loaded, weights)
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for row in loaded.rows:
        by_domain.setdefault(row["domain"], []).append(row)
    total, rng, rows = len(loaded.rows), random.Random(seed), []
    for domain, count in sorted(domain_counts(total, weights).items()):
        own = by_domain[domain]
        rows += own * (count // len(own)) + rng.sample(own, count % len(own))
    return rows


def domain_counts(total: int, weights: dict[str, float]) -> dict[str, int]:
    """`total` rows shared out in proportion to `weights` (largest remainders round up)."""
    norm = sum(weights.values())
    exact = {d: total * w / norm for d, w in weights.items()}
    counts = {d: int(x) for d, x in exact.items()}
    for d in sorted(exact, key=lambda d: counts[d] - exact[d])[: total - sum(counts.values())]:
        counts[d] += 1
    return counts


def check_weights(loaded: RlFile, weights: dict[str, float]) -> None:
    """data.weights names exactly the trained domains, each with a positive weight."""
    chosen = sorted({r["domain"] for r in loaded.rows})
    problem = None
    if sorted(weights) != chosen:
        problem = f"names {', '.join(sorted(weights)) or 'no domain'}; the rows trained on are {', '.join(chosen)}"
    elif any(not isinstance(w, int | float) or w <= 0 for w in weights.values()):
        problem = "every weight must be a positive number (leave a domain out with data.domains)"
    if problem:
        raise ConfigError(
            "data.weights", weights, problem,
            valid="one positive weight per trained domain (shares of each epoch's rows, "
            "normalised), or {} for the file's own ratio",
            fix="e.g. data.weights={" + ",".join(f"{d}:1" for d in chosen) + "}",
        )


def summary(loaded: RlFile, weights: dict[str, float] | None = None) -> str:
    """One line for the plan: rows per domain and snapshots found."""
    chosen = Counter(r["domain"] for r in loaded.rows)
    per_domain = ", ".join(f"{d} {chosen[d]}" for d in sorted(chosen))
    skipped = sorted(set(loaded.domain_rows) - set(chosen))
    snapshots = ", ".join(sorted(os.path.basename(s) for s in loaded.snapshots))
    mix = ""
    if weights:
        counts = domain_counts(len(loaded.rows), weights)
        mix = "; mixed by data.weights: " + ", ".join(
            f"{d} {counts[d]} ({counts[d] / chosen[d]:.2g}x)" for d in sorted(counts))
    return (f"{len(loaded.rows)} RL rows ({per_domain})"
            + (f", left out: {', '.join(skipped)}" if skipped else "") + mix
            + f"; {len(loaded.snapshots)} snapshot(s) found: {snapshots}")


class BadLine(ValueError):
    """A line of a released file that cannot be used: what is wrong, and how to put it right."""

    def __init__(self, problem: str, valid: str | None = None, fix: str = FIX_ROW):
        super().__init__(problem)
        self.valid, self.fix = valid, fix


def read_lines(file: str, parse: Callable[[int, str, set[str]], T], nothing: str) -> tuple[T, ...]:
    """Every line of a released JSONL file (blank ones skipped) as `parse(line number, text,
    tau2's domains)` makes it: the first line it refuses (ValueError, BadLine for a message of
    its own) is one ConfigError on data.path naming the file and the line; a file with no line
    is one too (`nothing`: what it has none of)."""
    known = set(tau2_catalog.domain_splits())
    folder = str(Path(file).parent)
    parsed = []
    with open(file, encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                parsed.append(parse(number, text, known))
            except ValueError as e:
                valid, fix = (e.valid, e.fix) if isinstance(e, BadLine) else (None, FIX_ROW)
                raise ConfigError(KEY, folder, f"{file}:{number}: {e}", valid=valid, fix=fix) from None
    if not parsed:
        raise ConfigError(KEY, folder, f"{file} has no {nothing}", fix="re-download the dataset")
    return tuple(parsed)


def tau2_domain(domain: str, known: set[str]) -> str:
    """`domain`, one of tau2's `known` domains (BadLine otherwise)."""
    if domain not in known:
        raise BadLine(f"domain {domain!r} is not one of tau2's", valid=", ".join(sorted(known)))
    return domain


@functools.lru_cache(maxsize=4)
def _load_file(file: str, mtime_ns: int) -> RlFile:
    """Every row of the file, each checked (cached per file version: validation, the plan
    and the trainer call share one load)."""
    from loguru import logger

    logger.disable("tau2")
    from pydantic import ValidationError
    from tau2.data_model.tasks import Task

    exists: dict[str, bool] = {}

    def row(number: int, text: str, known: set[str]) -> dict[str, Any]:
        record = layout.parse_line(text)
        domain = layout.row_domain(record)
        fields = layout.task_fields(record)
        tau2_domain(domain, known)
        try:
            Task.model_validate(fields)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(the task)"
            raise BadLine(f"not a τ² Task: {where}: {first['msg']} ({e.error_count()} problem(s))") from None
        db_path = record.get(layout.DB_PATH_KEY)
        if not isinstance(db_path, str) or not db_path:
            raise BadLine(f"no {layout.DB_PATH_KEY} (the row's DB snapshot)",
                          valid=f"a path relative to the folder, e.g. {layout.DB_DIR}/tau2_{domain}_new_db_1.json")
        made = layout.dataset_row(Path(file), number, record, domain)
        snapshot = made["db_path"]
        if snapshot not in exists:
            exists[snapshot] = os.path.isfile(snapshot)
        if not exists[snapshot]:
            raise BadLine(f"its snapshot {db_path} does not exist ({snapshot})",
                          fix=f"download the whole dataset, {layout.DB_DIR}/ included")
        return made

    rows = read_lines(file, row, "rows")
    return RlFile(Path(file), rows, dict(Counter(r["domain"] for r in rows)), dict(Counter(r["db_path"] for r in rows)))
