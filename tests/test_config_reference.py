"""The per-field documentation has one source, the schemas' `help` metadata: the rendered
reference (docs/config-reference.md, `tau2train-config-reference`) is checked against it, and
every tau2train field has a help."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cli import Result, in_process

from tau2train.config.reference import REFERENCE_FILE, render, section_names, sections
from tau2train.schemas import HELP, RunInfo

ROOT = Path(__file__).resolve().parents[1]


def test_the_reference_file_is_what_the_schemas_render():
    written = (ROOT / REFERENCE_FILE).read_text()
    assert written == render(), (
        f"{REFERENCE_FILE} is out of date: run `tau2train-config-reference --write {REFERENCE_FILE}`"
    )


def test_every_tau2train_field_has_a_help():
    missing = [
        f"{prefix}.{f.name}"
        for prefix, _, fields in sections()
        for f in fields
        if not f.metadata.get(HELP, "").strip()
    ]
    missing += [f"RunInfo.{f.name}" for f in dataclasses.fields(RunInfo) if not f.metadata.get(HELP)]
    assert missing == []


def test_every_group_and_nested_schema_has_a_section():
    assert {"top level", "econfig", "econfig.nl_judge", "group_filter", "model", "domain", "data", "allocation", "slurm", "ray", "eval",
            "eval.server", "trainer", "sft", "tracking", "user_sim", "user_sim.slurm", "reward", "reward.terms[]"} == set(section_names())


def test_a_field_is_rendered_with_its_type_default_range_and_help():
    text = render(["reward"])
    assert text.startswith("## `reward` (RewardSpec)")
    assert ("| `reward.format_penalty` | `float` | `0.1` | >= 0 | Penalty given to each malformed agent completion "
            "(unknown tool, arguments that are not a JSON object or do not fit the tool's schema, an empty message). |") in text
    slurm = render(["slurm"])
    assert "| `slurm.container_type` | `str` | `none` | `none`, `apptainer` |" in slurm
    assert "## `reward`" not in slurm


def test_the_default_is_what_a_run_gets_with_the_schemas_beside_it_where_a_group_differs():
    """A run with no overrides plays airline, 50 steps (domain=airline), not the schema's
    telecom/100; values resolved, except the one read from this machine."""
    text = render(["econfig", "tracking"])
    assert "| `econfig.domain` | `str` | `airline` (schema: `telecom`) |" in text
    assert "| `econfig.max_steps` | `int` | `50` (schema: `100`) | >= 1 |" in text
    assert ("| `econfig.user_llm_base_url` | `str \\| None` | `${tau2train.user_sim_url:${user_sim.record_file}}` "
            "(schema: `null`) |") in text
    assert "`['model=qwen3-1.7b', 'domain=airline', 'cluster=local', 'mode=train']` (schema: `[]`)" in text


def reference_cli(*args: str) -> Result:
    """The command's main in this process (its console script runs for real below)."""
    from tau2train.config.reference import main

    return in_process(*args, cwd=Path.cwd(), main=main)


def test_the_command_prints_a_section_and_refuses_an_unknown_one():
    shown = reference_cli("user_sim.slurm")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("## `user_sim.slurm` (UserSimSlurmSpec)")
    assert "`user_sim.slurm.gpus_per_node`" in shown.stdout
    bad = reference_cli("econfg")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: no section 'econfg'")
    assert "valid: top level, econfig" in bad.stderr


@pytest.mark.parametrize("script,args,words", [
    ("tau2train-user-sim", ["--help"], ["usage: tau2train-user-sim"]),
    ("tau2train-sweep-report", ["--help"], ["sweep"]),
    ("tau2train-config-reference", ["tracking"], ["## `tracking` (TrackingSpec)"]),
])
@pytest.mark.slow
def test_console_scripts_are_installed(script, args, words):
    """pyproject.toml's [project.scripts], as `make install` puts them in the environment.
    (`tau2train` runs for real in test_cli's regular-install test; `tau2train-submission` in
    test_leaderboard; `tau2train-eval-steps`, as `python -m`, in test_checkpoint_eval;
    `tau2train-compare` in test_compare.)"""
    path = Path(sys.executable).parent / script
    assert path.exists(), f"{path} missing: reinstall with `make install`"
    done = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for word in words:
        assert word in done.stdout, f"{word!r} not in:\n{done.stdout}"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9_]+", text.lower()) if len(w) > 2}


def _commented_keys(path: Path) -> Iterator[tuple[str, str]]:
    """(dotted key, the comment lines right above it) of a conf/ YAML file."""
    lines = path.read_text().splitlines()
    package = "" if lines and lines[0].strip() == "# @package _global_" else path.parent.name + "."
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("#"):
            comment.append(text.lstrip("# "))
            continue
        found = re.match(r"( *)([A-Za-z_][\w]*):", line)
        if found:
            indent = len(found.group(1))
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, found.group(2))]
            if comment:
                yield package + ".".join(k for _, k in stack), " ".join(comment)
        comment = []


def test_yaml_comments_say_why_not_what_the_help_says():
    """A key's meaning is written once, in its schema `help`: a comment above a key in conf/ that
    repeats most of that help's words is a second copy, bound to drift."""
    helps = {f"{prefix}.{f.name}".removeprefix("top level."): f.metadata.get(HELP, "")
             for prefix, _, fields in sections() for f in fields}
    copies = []
    for path in sorted((ROOT / "conf").rglob("*.yaml")):
        for key, comment in _commented_keys(path):
            said = _words(comment)
            if key in helps and len(said) >= 3 and len(said & _words(helps[key])) >= 0.6 * len(said):
                copies.append(f"{path.relative_to(ROOT)}: {key}: # {comment}")
    assert copies == []
