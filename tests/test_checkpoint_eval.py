"""`mode=eval` of a training checkpoint: tau2train finds it in AReaL's layout, serves it, scores it
and stops the server, as a user runs it. The scripted server (tests/helpers/scripted_llm.py)
stands in for `sglang.launch_server`; it ignores the weights and plays the script its served
model name picks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.areal_run import plain, processes_with_env
from helpers.checkpoints import save_checkpoints
from helpers.cli import wait_for
from helpers.marked_run import start, stop_leftovers

from tau2train.records.eval_report import read_eval_report
from tau2train.reports import leaderboard

pytestmark = [pytest.mark.slow]

TESTS = Path(__file__).resolve().parent
EXPERIMENT, TRIAL = "tau2-qwen3-1.7b-airline", "trial0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def trained(cli, tmp_path) -> tuple[Path, dict[int, Path]]:
    """A training run's directory (its AReaL config written by a dry run) and its checkpoints."""
    fileroot = tmp_path / "exp"
    result = cli("dry_run=true", f"cluster.fileroot={fileroot}", "econfig.user_llm_base_url=http://h:1/v1",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return fileroot / EXPERIMENT / TRIAL, save_checkpoints(fileroot, EXPERIMENT, TRIAL, [1, 2])


def eval_args(llm, *extra: str) -> list[str]:
    return [
        "mode=eval", f"econfig.user_llm_base_url={llm.base_url}", "econfig.user_llm=user",
        "eval.server.server_module=helpers.scripted_llm", f"eval.server.port={free_port()}",
        "eval.num_trials=1", "eval.max_concurrency=20", "tracking=none", *extra,
    ]


def env() -> dict[str, str]:
    return {"PYTHONPATH": str(TESTS)}


def test_the_latest_checkpoint_of_a_training_run_is_served_scored_and_stopped(cli, llm, trained, tmp_path):
    """The served "checkpoint" plays flaky: every task's second episode fails at the endpoint
    (HTTP 500), so episodes raise mid-evaluation; they are excluded and the server still stops."""
    run_dir, saved = trained
    # two of the scored tasks were played in training, as AReaL's workers record episodes
    for task in ("13", "6"):
        played = run_dir / "generated" / "train" / task / "20260101-000000-0.json"
        played.parent.mkdir(parents=True)
        played.write_text(json.dumps({"task_id": task, "domain": "airline", "split": "train", "reward": 1.0}))
    llm.episodes.clear()  # episode numbers count from 0 again (the server is the session's)
    result = cli(*eval_args(llm, f"eval.checkpoint={run_dir}", "eval.checkpoint_step=latest",
                                "eval.agent_model=flaky", "eval.num_trials=2", f"cluster.fileroot={tmp_path}/evals",
                                "eval.max_infra_failure_rate=0.5"),  # half failing: complete for this test
                     cwd=tmp_path, env=env())
    assert result.returncode == 0, result.stderr
    out = result.stdout
    [metrics_file] = (tmp_path / "evals").rglob("metrics.json")
    report = json.loads(metrics_file.read_text())
    assert report["checkpoint"] == {"path": str(saved[2]), "step": 2}
    assert report["agent_model"] == "flaky" and report["pass_hat_k"] == {"1": 1.0, "2": None}
    assert report["num_infra_failures"] == 20 and report["infra_failures_are"] == "excluded"
    assert "20 of 40 episodes failed outside the agent and are excluded" in out
    assert f"serving {saved[2]} as 'flaky' (pid " in out
    pid = int(out.split("(pid ", 1)[1].split(")", 1)[0])
    assert f"stopped the checkpoint server (pid {pid})" in out
    assert not Path(f"/proc/{pid}").exists()  # stopped, and reaped
    log = metrics_file.with_name("server.log").read_text()
    assert "serving on http://127.0.0.1:" in log  # the server's own output went to its log
    # honest about training: the stages it came from, the scored tasks it trained on, custom
    stage = f"RL (AReaL), 2 steps on tau2/airline (split train), from Qwen/Qwen3-1.7B; run {run_dir}"
    warning = ("2 of the 20 scored tasks were played in this checkpoint's training (6, 13): their scores "
               "measure what it learned on them, not how it generalises")
    assert report["training"] == {"stages": [stage], "trained_tasks": ["13", "6"], "overlap": ["6", "13"]}
    assert report["trained_tasks_warning"] == warning and f"warning: {warning}" in out.splitlines()
    submission = json.loads(metrics_file.with_name("submission.json").read_text())
    assert submission["submission_type"] == "custom"
    assert submission["methodology"]["notes"].endswith(f" Trained with tau2train (a custom submission): {stage}.")
    plan = cli(*eval_args(llm, f"eval.checkpoint={run_dir}", "dry_run=true", f"cluster.fileroot={tmp_path}/evals"),
               cwd=tmp_path, env=env())
    assert f"  trained     {stage}" in plan.stdout.splitlines() and f"  warning     {warning}" in plan.stdout
    with pytest.raises(leaderboard.CannotMerge, match="trained on τ² tasks with tau2train: the leaderboard lists "
                       "such a model as custom, not standard; drop --submission-type standard"):
        leaderboard.submission([read_eval_report(metrics_file)], {"submission_type": "standard"})
    standard = cli(*eval_args(llm, f"eval.checkpoint={run_dir}", "dry_run=true", "eval.submission_type=standard"),
                   cwd=tmp_path, env=env())
    assert standard.returncode == 2 and standard.stderr.startswith(
        "error: eval.submission_type='standard': the checkpoint was trained by tau2train")


def test_step_0_is_the_base_model_and_the_report_compares_with_it(cli, llm, trained, tmp_path):
    """A sweep over steps evaluates the base model as step 0; a later checkpoint's report puts
    the two side by side."""
    run_dir, saved = trained
    common = [f"eval.checkpoint={run_dir}", f"cluster.fileroot={tmp_path}/evals", "trial_name=steps"]
    base = cli(*eval_args(llm, *common, "eval.checkpoint_step=0", "eval.agent_model=wrong",
                              f"actor.path={saved[1]}"), cwd=tmp_path, env=env())
    assert base.returncode == 0, base.stderr
    assert f"serving {saved[1]} as 'wrong'" in base.stdout
    later = cli(*eval_args(llm, *common, "eval.checkpoint_step=2", "eval.agent_model=gold"),
                    cwd=tmp_path, env=env())
    assert later.returncode == 0, later.stderr
    reports = {json.loads(p.read_text())["checkpoint"]["step"]: json.loads(p.read_text())
               for p in (tmp_path / "evals").rglob("metrics.json")}
    assert set(reports) == {0, 2}
    # "wrong" drops each task's last gold call: of airline's 20 test tasks it solves the 6 whose
    # gold calls end in one that changes no record (a read: 6, 45, 48; transfer_to_human_agents: 13)
    # or are none (26, 31): 30.0 %
    assert reports[0]["pass_hat_k"]["1"] == pytest.approx(0.3) and reports[2]["pass_hat_k"]["1"] == 1.0
    rows = [line.split() for line in later.stdout.splitlines()]
    assert ["gold", "100.0", "100.0", "this", "evaluation"] in rows
    assert ["wrong", "30.0", "30.0", "base", "model,", "evaluated", "here"] in rows
    # the paired comparison (tau2train-compare's) beside it: gold solves every task
    [versus] = [line for line in later.stdout.splitlines() if line.startswith("  this checkpoint − base model: ")]
    assert versus.endswith(": this checkpoint better"), versus


def test_a_checkpoint_server_that_dies_is_reported_with_its_log(cli, llm, trained, tmp_path):
    run_dir, _ = trained
    result = cli(*eval_args(llm, f"eval.checkpoint={run_dir}", f"cluster.fileroot={tmp_path}/evals"),
                     "eval.server.server_module=no_such_server", cwd=tmp_path, env=env())
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()
    assert message[0].startswith("error: the checkpoint server exited with status 1 before answering "
                                 "GET /health; see its log "), result.stderr
    assert "No module named no_such_server" in result.stderr  # the log's last lines
    assert not list((tmp_path / "evals").rglob("metrics.json"))


def test_ctrl_c_stops_the_checkpoint_server(llm, trained, tmp_path):
    run_dir, _ = trained
    popen, output, marker = start(
        eval_args(llm, f"eval.checkpoint={run_dir}", "eval.agent_model=slow", f"cluster.fileroot={tmp_path}/evals"),
        tmp_path, {**os.environ, **env()},
    )
    try:
        wait_for(lambda: "episode/s" in output.read_text(), "the evaluation to start", 180,
                 lambda: output.read_text()[-3000:])
        assert len(processes_with_env(marker)) == 2  # the evaluation and its server
        popen.send_signal(signal.SIGINT)
        popen.wait(timeout=120)
        text = plain(output)
        assert popen.returncode == 128 + signal.SIGINT, text[-3000:]
        assert "stopped the checkpoint server" in text, text[-3000:]
        assert text.rstrip().endswith("stopped by Ctrl-C"), text[-3000:]  # nothing after the last line
        assert processes_with_env(marker) == []
    finally:
        if popen.poll() is None:
            popen.kill()
        stop_leftovers(marker)


def test_a_slurm_checkpoint_evaluation_asks_for_the_servers_gpus(cli, trained, tmp_path):
    run_dir, _ = trained
    common = ["mode=eval", "dry_run=true", "cluster=slurm", f"cluster.fileroot={tmp_path}/evals",
              f"cluster.name_resolve.nfs_record_root={tmp_path}/nr", "econfig.user_llm_base_url=http://h:1/v1"]
    serving = cli(*common, f"eval.checkpoint={run_dir}", "eval.server.tp=2", "eval.server.gpus=2", cwd=tmp_path)
    assert serving.returncode == 0, serving.stderr
    assert "#SBATCH --gpus-per-node=2" in serving.stdout
    assert "served by sglang.launch_server on 127.0.0.1:30000 with 2 GPU(s)" in serving.stdout
    endpoint = cli(*common, "eval.agent_base_url=http://h:2/v1", cwd=tmp_path)
    assert endpoint.returncode == 0, endpoint.stderr
    assert "--gpus-per-node" not in endpoint.stdout


def test_a_sweep_over_steps_and_domains_gives_pass1_by_step(cli, llm, trained, tmp_path):
    """`-m eval.checkpoint_step=0,2 domain=airline,retail`: four evaluations, one per point;
    `tau2train-eval-steps` tabulates and plots pass^1 per domain against the step. The base
    model (step 0) plays wrong, step 2's checkpoint gold (config.json names the script)."""
    run_dir, saved = trained
    base = tmp_path / "base-model"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"tau2test_script": "wrong"}))
    (saved[2] / "config.json").write_text(json.dumps({"tau2test_script": "gold"}))
    evals = tmp_path / "evals"
    result = cli("-m", *eval_args(llm, f"eval.checkpoint={run_dir}", "eval.checkpoint_step=0,2",
                                      "domain=airline,retail", f"actor.path={base}", f"cluster.fileroot={evals}"),
                     cwd=tmp_path, env=env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("stopped the checkpoint server") == 4
    assert f"serving {saved[2]} as 'tau2-qwen3-1.7b-retail-step2'" in result.stdout

    steps = subprocess.run([sys.executable, "-m", "tau2train.reports.steps", str(evals)],
                           capture_output=True, text=True, timeout=120)
    assert steps.returncode == 0, steps.stderr
    reports = {(r["domain"], r["checkpoint"]["step"]): r
               for r in map(lambda p: json.loads(p.read_text()), evals.rglob("metrics.json"))}
    assert set(reports) == {(d, s) for d in ("airline", "retail") for s in (0, 2)}
    rows = [line.split("  ") for line in steps.stdout.splitlines()]
    table = [[c.strip() for c in row if c.strip()] for row in rows]
    assert ["step", "airline", "retail"] in table
    assert ["2", "100.0 ± 0.0", "100.0 ± 0.0"] in table
    # the base model plays "wrong" (each task's last gold call dropped): it solves the tasks whose
    # gold calls end in one that changes no record (a read, transfer_to_human_agents) or are none:
    # airline 6 of 20 (6, 13, 26, 31, 45, 48: 30.0 %), retail 5 of 40 (12, 26, 62, 65, 68: 12.5 %).
    # One trial per task, so the SE is the sample SD of the 0/1 outcomes over sqrt(tasks):
    # airline sqrt((6 x 0.7^2 + 14 x 0.3^2)/19/20) = 0.1051, retail
    # sqrt((5 x 0.875^2 + 35 x 0.125^2)/39/40) = 0.0530
    base_row = next(row for row in table if row and row[0] == "0 (base)")
    assert base_row == ["0 (base)", "30.0 ± 10.5", "12.5 ± 5.3"]
    assert reports[("airline", 0)]["pass_hat_k"]["1"] == pytest.approx(0.3)
    assert reports[("retail", 0)]["pass_hat_k"]["1"] == pytest.approx(0.125)
    assert (evals / "pass1_by_step.png").read_bytes()[:4] == b"\x89PNG"
    lines = (evals / "pass1_by_step.csv").read_text().splitlines()
    assert lines[0].startswith("domain,step,pass^1") and len(lines) == 5


@pytest.mark.slurm
def test_on_slurm_the_checkpoint_is_served_inside_the_evaluation_job(cli, llm, trained, tmp_path):
    from helpers.cli import job_state, require_slurm, slurm_overrides

    require_slurm()
    run_dir, saved = trained
    result = cli(*eval_args(llm, f"eval.checkpoint={run_dir}", "eval.agent_model=gold",
                                "eval.server.slurm_gpus_per_node=0",  # this test's Slurm has no GPUs
                                "slurm.cpus_per_task=1", "slurm.mem_gb=1", *slurm_overrides(tmp_path)),
                     cwd=tmp_path, env=env())
    assert result.returncode == 0, result.stderr
    job_dir = tmp_path / "experiments" / EXPERIMENT / TRIAL
    wait_for(lambda: job_state(job_dir) in ("completed", "failed"), "the evaluation job to finish")
    record = json.loads((job_dir / "job.json").read_text())
    assert record["state"] == "completed", Path(record["stderr"]).read_text()[-3000:]
    [metrics] = job_dir.glob("eval/*/metrics.json")
    report = json.loads(metrics.read_text())
    assert report["checkpoint"] == {"path": str(saved[2]), "step": 2} and report["pass_hat_k"]["1"] == 1.0
    job_out = Path(record["stdout"]).read_text()
    assert f"serving {saved[2]} as 'gold'" in job_out and "stopped the checkpoint server" in job_out
    assert "serving on http://127.0.0.1:" in metrics.with_name("server.log").read_text()


@pytest.mark.parametrize("server", ["eval.server", "user_sim"])
def test_the_server_commands_are_ones_sglangs_own_parser_accepts(server, trained):
    """No GPU here to start SGLang: its own argument parser (the one `sglang.launch_server`
    runs) checks every flag and choice tau2train passes, parsers included."""
    import argparse

    from sglang.srt.server_args import ServerArgs

    from tau2train.config.compose import compose
    from tau2train.config.servers import server_command

    run_dir, saved = trained
    exp = compose(["mode=eval", f"eval.checkpoint={run_dir}", "econfig.user_llm_base_url=http://h:1/v1"]).config
    spec = exp.eval.server if server == "eval.server" else exp.user_sim
    path, name = (str(saved[2]), "ckpt") if server == "eval.server" else (spec.model_path, spec.served_model_name)
    command = server_command(spec, path, name, server)
    assert command[1:3] == ["-m", "sglang.launch_server"]
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    parsed = vars(parser.parse_args(command[3:]))  # exits (fails the test) on anything SGLang refuses
    assert parsed["model_path"] == path and parsed["served_model_name"] == name
    assert parsed["tool_call_parser"] == "qwen25" and parsed["port"] == spec.port
    if server == "eval.server":  # as training's proxy parsed the policy's output
        assert parsed["reasoning_parser"] == exp.rollout.agent.reasoning_parser == "qwen3"
        assert parsed["chat_template"] is None  # the checkpoint's own template
    else:
        assert parsed["chat_template"].endswith("qwen_nonthinking.jinja")
