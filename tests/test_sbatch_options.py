"""sbatch options as typed keys (`slurm.constraint`, `.reservation`, `.exclusive`, beside
`.partition`, `.account`, `.qos`) and a free-form map for the rest (`slurm.extra_sbatch`): each
in the plan and in the sbatch script the dry run shows (submitit's own renderer; test_slurm
submits one), nothing added by default, and bad values refused before anything is written."""

from __future__ import annotations

import re

import pytest
from helpers.cli import USER_SIM, slurm_overrides

from tau2train.config.compose import compose
from tau2train.config.errors import ConfigError

SBATCH = re.compile(r"^#SBATCH --([a-z-]+)(=.*)?$", re.M)


def sbatch_lines(out: str) -> dict[str, str | None]:
    """{option: its value as written (None: a flag)} of the sbatch script in a dry run's output."""
    script = out[out.index("#!/bin/bash"):]
    return {name: value[1:] if value else None for name, value in SBATCH.findall(script)}


def plan_rows(out: str) -> dict[str, str]:
    """The plan's "the job:" rows."""
    rows = {}
    for line in out[out.index("  the job:"):].splitlines()[1:]:
        if not line.startswith("    "):
            break
        key, value = line.split(None, 1)
        rows[key] = value
    return rows


def test_sbatch_options_reach_the_plan_and_the_script_and_none_is_added_by_default(cli, tmp_path):
    default = cli("dry_run=true", USER_SIM, *slurm_overrides(tmp_path), cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert sorted(sbatch_lines(default.stdout)) == [
        "cpus-per-task", "error", "gpus-per-node", "job-name", "mem", "nodes", "ntasks-per-node", "open-mode",
        "output", "requeue", "signal", "time", "wckey"]

    result = cli("dry_run=true", USER_SIM, *slurm_overrides(tmp_path), "slurm.partition=gpu",
                 "slurm.account=lab", "slurm.qos=high", "slurm.constraint=h100|a100", "slurm.reservation=maint",
                 "slurm.exclusive=true", "slurm.extra_sbatch={mail-type:END,mail_user:me@lab.org,contiguous:true}",
                 "slurm.extra_sbatch.comment=tau2 sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    expected = {"partition": "gpu", "account": "lab", "qos": "high", "constraint": "'h100|a100'",
                "reservation": "maint", "exclusive": None, "mail-type": "END", "mail-user": "me@lab.org",
                "contiguous": None, "comment": "'tau2 sweep'"}
    written = sbatch_lines(result.stdout)
    assert {option: written.get(option, "missing") for option in expected} == expected
    assert written["requeue"] is None  # tau2train's own, kept
    rows = plan_rows(result.stdout)
    assert {k: rows.get(k) for k in ("constraint", "reservation", "exclusive", "mail-type", "contiguous")} == {
        "constraint": "h100|a100", "reservation": "maint", "exclusive": "true", "mail-type": "END",
        "contiguous": "true"}


def test_a_multi_node_plan_says_which_options_areals_role_jobs_get(cli, tmp_path):
    result = cli("dry_run=true", "model=qwen3_8b", USER_SIM, *slurm_overrides(tmp_path),
                 "slurm.constraint=h100", "slurm.partition=gpu", "slurm.time_minutes=600",
                 "slurm.extra_sbatch.mail-type=END", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sbatch_lines(result.stdout)["constraint"] == "h100"  # the controller's job
    assert ("(each with the controller's partition=gpu, constraint=h100, timelimit=600 through sbatch's "
            "SBATCH_* environment; not slurm.extra_sbatch)") in result.stdout


REFUSED = {
    "a space in a Slurm name": (
        "slurm.constraint=h100 a100",
        ["error: slurm.constraint='h100 a100': holds ' ': each sbatch option is one #SBATCH line of the job's "
         "script, and a Slurm name holds no space",
         "  valid: one line without spaces, e.g. h100, gpu, my-lab",
         "  fix:   set slurm.constraint to the value without ' '"]),
    "a line break in an extra value": (
        "slurm.extra_sbatch.comment='a\nsrun rm -rf x'",  # quoted: Hydra's lexer takes the line break
        ["error: slurm.extra_sbatch.comment='a\\nsrun rm -rf x': holds '\\n': each sbatch option is one #SBATCH "
         "line of the job's script",
         "  valid: one line, e.g. END",
         "  fix:   set slurm.extra_sbatch.comment to the value without '\\n'"]),
    "an option a typed key sets": (
        "slurm.extra_sbatch.constraint=h100",
        ["error: slurm.extra_sbatch.constraint='h100': tau2train sets sbatch --constraint itself, from "
         "slurm.constraint",
         "  valid: an option tau2train does not set (it sets partition, account, qos, constraint, reservation, "
         "exclusive, time, cpus-per-task, mem, gpus-per-node, nodes, ntasks-per-node, job-name, array, output, "
         "error, open-mode, wckey, signal, requeue)",
         "  fix:   set slurm.constraint=h100 instead of slurm.extra_sbatch.constraint"]),
    "an option another key sets": (
        "slurm.extra_sbatch.mem=64G",
        ["error: slurm.extra_sbatch.mem='64G': tau2train sets sbatch --mem itself, from slurm.mem_gb"]),
    "an option tau2train derives": (
        "slurm.extra_sbatch.nodes=2",
        ["error: slurm.extra_sbatch.nodes=2: tau2train sets sbatch --nodes itself, from the placement "
         "(one node per job)"]),
    "a one-letter alias": (
        "slurm.extra_sbatch.C=h100",
        ["error: slurm.extra_sbatch.C='h100': 'C' is not an sbatch option's long name (it would be written "
         "#SBATCH --C)",
         "  valid: sbatch's long option names, lower case, without the leading dashes: mail-type, comment, ...",
         "  fix:   use the name `sbatch --help` gives after -- (mail-type for --mail-type), not a one-letter alias"]),
    "a list": (
        "slurm.extra_sbatch.mail-type=[END,FAIL]",
        ["error: slurm.extra_sbatch.mail-type=['END', 'FAIL']: an sbatch option takes one value, or none "
         "(true: a flag such as --contiguous)"]),
    "an empty name": (
        "slurm.reservation=''",
        ["error: slurm.reservation='': is empty"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_sbatch_options_are_refused_with_one_message_and_nothing_written(cli, case, tmp_path):
    override, message = REFUSED[case]
    result = cli("dry_run=true", USER_SIM, *slurm_overrides(tmp_path), override, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[:len(message)] == message
    assert "fix:" in result.stderr and result.stdout == ""
    assert not (tmp_path / "experiments").exists()


def test_every_option_the_script_holds_is_refused_in_extra_sbatch(cli, tmp_path):
    """What tau2train or submitit writes in a script (a sweep's --array included, every typed
    option set) cannot be written a second time through slurm.extra_sbatch."""
    typed = ["slurm.partition=gpu", "slurm.account=lab", "slurm.qos=high", "slurm.constraint=h100",
             "slurm.reservation=maint", "slurm.exclusive=true"]
    overrides = [USER_SIM, *slurm_overrides(tmp_path), *typed]
    sweep = cli("-m", "dry_run=true", *overrides, "reward.turn_discount=0.9,1.0", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr
    options = sorted(sbatch_lines(sweep.stdout))
    assert "array" in options and "constraint" in options
    from tau2train.config.sbatch import check_sbatch_options

    exp = compose(overrides).config
    for option in options:
        exp.slurm.extra_sbatch = {option: "x"}
        with pytest.raises(ConfigError, match=f"tau2train sets sbatch --{option} itself"):
            check_sbatch_options(exp)
