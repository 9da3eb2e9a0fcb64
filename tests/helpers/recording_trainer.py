"""A recording stand-in for AReaL's PPOTrainer, put at the GPU boundary through the config:
`trainer._target_=helpers.recording_trainer.RecordingTrainer`. It does what the real trainer does
first with its arguments (builds the workflow from its import path and kwargs, reads the
datasets) and writes what it was given to <run_dir>/trainer_call.json, counting the calls
(a requeued job calls it again). With $HOLD_FIRST_TRAINING=1 the first call then waits, as
a long training would, until a signal (Slurm preemption) or 300 s."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

from hydra.utils import get_class

RECORD_NAME = "trainer_call.json"


class RecordingTrainer:
    def __init__(self, config, train_dataset=None, valid_dataset=None):
        self.config = config
        self.train_dataset = train_dataset
        self.valid_dataset = valid_dataset

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def train(self, workflow, workflow_kwargs, eval_workflow, eval_workflow_kwargs, dynamic_filter_fn):
        workflows = [get_class(workflow)(**workflow_kwargs), get_class(eval_workflow)(**eval_workflow_kwargs)]
        config = self.config
        record = {
            "config_type": f"{type(config).__module__}.{type(config).__name__}",
            "config": asdict(config),
            "train_rows": list(self.train_dataset),
            "valid_rows": list(self.valid_dataset),
            "workflow": workflow,
            "workflow_kwargs": workflow_kwargs,
            "eval_workflow": eval_workflow,
            "eval_workflow_kwargs": eval_workflow_kwargs,
            "workflow_types": [type(w).__name__ for w in workflows],
            "dynamic_filter": {"type": type(dynamic_filter_fn).__name__, **asdict(dynamic_filter_fn)},
            "filter_keeps_solved_group": dynamic_filter_fn({"rewards": [1.0, 1.0]}),
        }
        out = Path(config.cluster.fileroot) / config.experiment_name / config.trial_name / RECORD_NAME
        record["calls"] = json.loads(out.read_text())["calls"] + 1 if out.exists() else 1
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, default=str))
        if record["calls"] == 1 and os.environ.get("HOLD_FIRST_TRAINING") == "1":
            threading.Event().wait(300)  # a signal handler (submitit's) interrupts this


SFT_RECORD_NAME = "sft_trainer_call.json"


class RecordingSFTTrainer(RecordingTrainer):
    """A stand-in for AReaL's SFTTrainer (`sft._target_=helpers.recording_trainer.RecordingSFTTrainer`):
    writes the SFTConfig and every dataset row it was given to <run_dir>/sft_trainer_call.json,
    then saves an empty model folder where AReaL's Saver puts the checkpoint of global step 1
    (its own path function), as a real run's first step would."""

    def train(self):
        from areal.utils.saver import Saver

        config = self.config
        record = {
            "config_type": f"{type(config).__module__}.{type(config).__name__}",
            "config": asdict(config),
            "train_rows": list(self.train_dataset),
            "valid_dataset": self.valid_dataset,
        }
        out = Path(config.cluster.fileroot) / config.experiment_name / config.trial_name / SFT_RECORD_NAME
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, default=str))
        saved = Path(Saver.get_model_save_path(config.experiment_name, config.trial_name,
                                               config.cluster.fileroot, epoch=0, step=0, globalstep=1))
        saved.mkdir(parents=True, exist_ok=True)
        (saved / "config.json").write_text("{}")
