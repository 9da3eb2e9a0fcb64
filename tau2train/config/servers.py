"""The SGLang servers tau2train starts itself (the user simulator's, an evaluated
checkpoint's): their launch command and the checks on their settings."""

from __future__ import annotations

import importlib.resources
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from tau2train.config.errors import ConfigError
from tau2train.records.checkpoints import (
    BASE_STEP,
    LATEST,
    NoCheckpoint,
    checkpoints,
    is_model_dir,
    parse_step,
    pick,
    run_checkpoint_root,
)
from tau2train.records.layout import areal_config_file
from tau2train.schemas import ExperimentConfig, ServerSpec

# eval.agent_model's default: a served checkpoint is then named after its run and step
DEFAULT_AGENT_MODEL = "default"

# Chat templates shipped inside the tau2train package (package data).
CHAT_TEMPLATES_DIR = "chat_templates"


def shipped_templates() -> list[str]:
    return sorted(p.name for p in _templates_folder().iterdir() if p.name.endswith(".jinja"))


def _templates_folder() -> Path:
    """tau2train/chat_templates: package data (pyproject.toml), shared by every layer."""
    return Path(str(importlib.resources.files("tau2train") / CHAT_TEMPLATES_DIR))


def chat_template_path(spec: ServerSpec, key: str = "user_sim") -> str:
    """A shipped template's installed path (by file name), or the user's own file."""
    if spec.chat_template in shipped_templates():
        return str(_templates_folder() / spec.chat_template)
    path = Path(spec.chat_template).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{key}.chat_template",
            spec.chat_template,
            "neither a template shipped with tau2train nor an existing file",
            valid=shipped_templates(),
            fix="name a shipped template, or give the path of your own .jinja file",
        )
    return str(path.resolve())


def server_command(spec: ServerSpec, model_path: str, served_model_name: str, key: str = "user_sim") -> list[str]:
    """The SGLang launch command of `spec` serving `model_path` (`key`: where spec sits in the
    config, for messages)."""
    template = [] if spec.chat_template is None else ["--chat-template", chat_template_path(spec, key)]
    return [
        spec.python or sys.executable, "-m", spec.server_module,
        "--model-path", model_path,
        "--served-model-name", served_model_name,
        "--tp", str(spec.tp),
        "--dp", str(spec.dp),
        "--tool-call-parser", spec.tool_call_parser,
        *template,
        "--host", spec.host,
        "--port", str(spec.port),
        *spec.extra_args,
    ]


def check_server(spec: ServerSpec, key: str) -> None:
    """What a server spec needs that composition cannot check."""
    if spec.tp * spec.dp != spec.gpus:
        raise ConfigError(
            f"{key}.gpus", spec.gpus,
            f"the server runs dp={spec.dp} replicas of tp={spec.tp} GPUs each: "
            f"{spec.tp * spec.dp} GPUs, not {spec.gpus}",
            valid=f"{key}.tp x {key}.dp = {spec.tp * spec.dp}",
            fix=f"set {key}.gpus, {key}.tp and {key}.dp so that gpus = tp x dp",
        )
    if spec.chat_template is not None:
        chat_template_path(spec, key)


def checkpoint_folder(path: Path) -> Path:
    """Where the checkpoints of `path` are: a training run directory (it holds the AReaL config
    tau2train wrote, which names the saver's folder) or a checkpoint folder itself."""
    config_file = areal_config_file(path)
    if not config_file.is_file():
        return path
    saver = OmegaConf.load(config_file).saver
    return run_checkpoint_root(saver.fileroot, saver.experiment_name, saver.trial_name)


@dataclass(frozen=True)
class ServedCheckpoint:
    """What `mode=eval` serves: the model folder, its training step (None: not one of a
    run's checkpoints) and the name the server answers to."""

    path: str
    step: int | None
    name: str


def served_checkpoint(exp: ExperimentConfig) -> ServedCheckpoint | None:
    """The checkpoint `eval.checkpoint` / `eval.checkpoint_step` name (None: an endpoint is
    evaluated); ConfigError when there is no such checkpoint."""
    ev = exp.eval
    if ev.checkpoint is None and ev.checkpoint_step is None:
        return None
    if ev.agent_base_url:
        raise ConfigError(
            "eval.agent_base_url", ev.agent_base_url,
            "is set together with a checkpoint to serve; an evaluation scores one or the other",
            fix="drop eval.agent_base_url to serve the checkpoint, or drop eval.checkpoint and "
            "eval.checkpoint_step to evaluate the endpoint",
        )
    try:
        step = parse_step(ev.checkpoint_step)
    except ValueError:
        raise ConfigError(
            "eval.checkpoint_step", ev.checkpoint_step, "is not a step",
            valid=f"{LATEST}, or a global step of the run's checkpoints ({BASE_STEP} = the base model, actor.path)",
            fix=f"e.g. eval.checkpoint_step={LATEST}",
        ) from None
    if step == BASE_STEP:
        path, step = exp.actor.path, BASE_STEP
    elif ev.checkpoint is not None and is_model_dir(Path(ev.checkpoint)):
        if step is not None:
            raise ConfigError(
                "eval.checkpoint_step", ev.checkpoint_step,
                f"{ev.checkpoint} is one model folder (it holds config.json), not a run's checkpoints",
                fix="drop eval.checkpoint_step, or point eval.checkpoint at the run's checkpoint folder",
            )
        path = ev.checkpoint
    else:
        key = "eval.checkpoint" if ev.checkpoint is not None else "eval.checkpoint_step"
        root = (checkpoint_folder(Path(ev.checkpoint)) if ev.checkpoint is not None
                else run_checkpoint_root(exp.cluster.fileroot, exp.experiment_name, exp.trial_name))
        if not root.is_dir():
            raise ConfigError(
                key, ev.checkpoint if ev.checkpoint is not None else ev.checkpoint_step,
                f"{root} does not exist" + ("" if ev.checkpoint is not None else
                                            " (this run's checkpoint folder: has it saved one yet?)"),
                valid="a training run's directory (<fileroot>/<experiment>/<trial>), its AReaL "
                "checkpoint folder (<fileroot>/checkpoints/<user>/<experiment>/<trial>), or a "
                "Hugging Face model folder",
                fix="check the path, or the experiment_name, trial_name and cluster.fileroot of the run",
            )
        found = checkpoints(root)
        try:
            step, chosen = pick(found, LATEST if step is None else step, root)
        except NoCheckpoint as e:
            raise ConfigError(
                "eval.checkpoint_step" if found else key,
                ev.checkpoint_step if found or ev.checkpoint is None else ev.checkpoint,
                str(e),
                valid=f"{LATEST}, {', '.join(map(str, found))} or {BASE_STEP} (the base model)" if found
                else "a folder holding AReaL's epoch*globalstep*/ checkpoints",
                fix="pick a saved step" if found else "train until the saver has written a checkpoint "
                "(saver.freq_steps / freq_epochs), or point eval.checkpoint at a model folder",
            ) from None
        path = str(chosen)
    name = ev.agent_model
    if name == DEFAULT_AGENT_MODEL:
        name = f"{exp.experiment_name}-step{step}" if step is not None else Path(path).name
    return ServedCheckpoint(path=path, step=step, name=name)
