"""The sbatch options of `slurm.constraint`, `.reservation`, `.exclusive` and `.extra_sbatch`:
what they add to the job's script (conf/cluster/slurm.yaml reads them through the resolver
registered from here; tau2train's launcher hands them to submitit, which writes one #SBATCH line
each), and the check that each is an option a script can hold and that tau2train does not set
itself. The same function serves the resolver (a DictConfig) and the plan (the typed config).
"""

from __future__ import annotations

import re
from typing import Any

from tau2train.config.errors import ConfigError
from tau2train.schemas import ExperimentConfig

# ${tau2train.sbatch_options:}: the options below (hydra.launcher.sbatch_options)
SBATCH_OPTIONS_RESOLVER = "tau2train.sbatch_options"
# The sbatch options the typed slurm.* keys of the same name write (beside partition, account, qos).
TYPED_OPTIONS = ("constraint", "reservation", "exclusive")
# Keys whose value is a Slurm name (partition, account, QOS, node features, reservation): no spaces.
NAME_KEYS = ("partition", "account", "qos", "constraint", "reservation")
# Every option a job's script gets from tau2train or submitit, and what sets it: slurm.extra_sbatch
# may not set one again (a second line would fight the first).
SET_BY = {
    "partition": "slurm.partition", "account": "slurm.account", "qos": "slurm.qos",
    **{option: f"slurm.{option}" for option in TYPED_OPTIONS},
    "time": "slurm.time_minutes", "cpus-per-task": "slurm.cpus_per_task", "mem": "slurm.mem_gb",
    "gpus-per-node": "the run's GPUs (cluster.n_gpus_per_node; mode=eval: eval.server)",
    "nodes": "the placement (one node per job)", "ntasks-per-node": "the placement (one task per job)",
    "job-name": "the experiment_name", "array": "a -m sweep (one array task per point)",
    "output": "cluster.fileroot (submitit's logs)", "error": "cluster.fileroot (submitit's logs)",
    "open-mode": "submitit (logs appended across requeues)", "wckey": "submitit",
    "signal": "submitit's requeue hook", "requeue": "tau2train (a preempted job requeues)",
}
# An sbatch option's long name as extra_sbatch takes it: mail-type (or mail_type, as submitit writes it)
LONG_NAME = re.compile(r"[a-z][a-z0-9]+(?:[-_][a-z0-9]+)*")


def sbatch_options(slurm: Any) -> dict[str, Any]:
    """The options slurm.constraint, .reservation, .exclusive and .extra_sbatch add to the job's
    script, {long name: value} (True: a flag without a value); unset ones add nothing."""
    typed = {option: getattr(slurm, option) for option in TYPED_OPTIONS}
    extra = {str(key).replace("_", "-"): value for key, value in slurm.extra_sbatch.items()}  # as sbatch spells it
    return {option: value for option, value in {**typed, **extra}.items() if value is not None and value is not False}


def sbatch_options_field(*, _root_: Any) -> dict[str, Any]:
    """The resolver behind ${tau2train.sbatch_options:}."""
    return sbatch_options(_root_.slurm)


def check_sbatch_options(exp: ExperimentConfig) -> None:
    """Every Slurm name is one word, every extra option is sbatch's, takes a value a #SBATCH
    line can hold, and is not one tau2train sets; ConfigError on the first that is not."""
    for name in NAME_KEYS:
        value = getattr(exp.slurm, name)
        if value is not None:
            _check_value(f"slurm.{name}", value, spaces=False)
    for option, value in exp.slurm.extra_sbatch.items():
        _check_extra(str(option), value)


def _check_extra(option: str, value: Any) -> None:
    key = f"slurm.extra_sbatch.{option}"
    if not LONG_NAME.fullmatch(option):
        raise ConfigError(
            key, value, f"{option!r} is not an sbatch option's long name (it would be written #SBATCH --{option})",
            valid="sbatch's long option names, lower case, without the leading dashes: mail-type, comment, ...",
            fix="use the name `sbatch --help` gives after -- (mail-type for --mail-type), not a one-letter alias",
        )
    named = option.replace("_", "-")
    set_by = SET_BY.get(named)
    if set_by:
        raise ConfigError(key, value, f"tau2train sets sbatch --{named} itself, from {set_by}",
                          valid="an option tau2train does not set (it sets " + ", ".join(SET_BY) + ")",
                          fix=_instead(option, value))
    if value is True:
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(
            key, value, "an sbatch option takes one value, or none (true: a flag such as --contiguous)",
            valid="a string, a number, or true", fix=f"give one value, or drop slurm.extra_sbatch.{option}",
        )
    _check_value(key, str(value), spaces=True)


def _instead(option: str, value: Any) -> str:
    """What to do in place of an extra option tau2train sets: its own key, or nothing."""
    key = SET_BY[option.replace("_", "-")].split()[0]
    if key == f"slurm.{option}":
        shown = str(value).lower() if isinstance(value, bool) else value
        return f"set {key}={shown} instead of slurm.extra_sbatch.{option}"
    if key.startswith("slurm."):
        return f"set {key} instead of slurm.extra_sbatch.{option}"
    return f"drop slurm.extra_sbatch.{option}"


def _check_value(key: str, value: str, spaces: bool) -> None:
    """A value an #SBATCH line holds: not empty, no line break or control character (the rest of
    the line would become a shell line), and for a Slurm name no space."""
    bad = [c for c in value if not c.isprintable() or (c.isspace() and not spaces)]
    if value and not bad:
        return
    raise ConfigError(
        key, value,
        "is empty" if not value else (
            f"holds {bad[0]!r}: each sbatch option is one #SBATCH line of the job's script"
            + ("" if spaces else ", and a Slurm name holds no space")),
        valid="one line" + ("" if spaces else " without spaces") + ", e.g. " + (
            "END" if spaces else "h100, gpu, my-lab"),
        fix=f"drop {key} (null: not set)" if not value else f"set {key} to the value without {bad[0]!r}",
    )
