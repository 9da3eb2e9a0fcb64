"""Guards of tau2train/compat/: each fails, naming what moved, when an upgrade of the upstream
library a compat function reaches into changes it (the internals read or written, and the
upstream behaviour that makes the patch necessary)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tau2train.compat import areal as areal_compat
from tau2train.compat import tau2 as tau2_compat

# --- tau2 ---------------------------------------------------------------------------------

def test_tau2s_registry_builds_environments_from_the_entry_replace_domain_writes():
    from tau2.registry import registry

    stock = registry.get_env_constructor("mock")
    assert registry._domains["mock"] is stock, "tau2's Registry no longer keeps constructors in _domains"

    def sentinel(**kwargs):
        raise NotImplementedError

    try:
        tau2_compat.replace_domain("mock", sentinel)
        assert registry.get_env_constructor("mock") is sentinel
    finally:
        tau2_compat.replace_domain("mock", stock)
    # the reason for the patch: the public register_domain refuses a name it has
    with pytest.raises(Exception, match="mock"):
        registry.register_domain(stock, "mock")


def test_remove_domain_forgets_an_alias_tau2_has_no_public_way_to_drop():
    from tau2.registry import registry

    stock = registry.get_env_constructor("mock")
    registry.register_domain(stock, "tau2train-compat-alias")
    tau2_compat.remove_domain("tau2train-compat-alias")
    assert "tau2train-compat-alias" not in registry.get_domains()
    assert not hasattr(registry, "unregister_domain"), "tau2 has a public unregister now: use it"


def test_tau2s_players_call_the_module_level_generate_that_set_generate_routes():
    from tau2.agent.llm_agent import LLMAgent, LLMSoloAgent
    from tau2.user.user_simulator import UserSimulator
    from tau2.utils import llm_utils

    # tau2's own, or tau2train's routing once an episode has run in this process
    assert all(g is llm_utils.generate or g.__module__.startswith("tau2train.") for g in tau2_compat.generates())
    for module in tau2_compat.player_modules():
        assert "from tau2.utils.llm_utils import" in inspect.getsource(module) and hasattr(module, "generate")
    for cls, method in ((LLMAgent, "generate_next_message"), (LLMSoloAgent, "generate_next_message"),
                        (UserSimulator, "_generate_next_message")):
        code = getattr(cls, method).__code__
        assert "generate" in code.co_names, f"{cls.__name__}.{method} no longer calls its module's generate"
        module = sys.modules[getattr(cls, method).__module__]
        assert module in tau2_compat.player_modules(), f"{cls.__name__} moved to {module.__name__}"


def test_tau2_reads_its_data_through_paths_use_data_dir_rebases(tmp_path):
    import tau2.domains.airline.utils as airline
    from tau2.domains.airline.environment import get_tasks
    from tau2.user import user_simulator
    from tau2.utils import utils

    packaged = tau2_compat.packaged_data_dir()
    assert Path(utils.DATA_DIR) == packaged, "tau2 moved its default data directory"
    assert "TAU2_DATA_DIR" not in inspect.getsource(utils), "tau2 reads TAU2_DATA_DIR now: use it"
    tasks = tmp_path / "tau2" / "domains" / "airline" / "tasks.json"
    tasks.parent.mkdir(parents=True)
    tasks.write_text(json.dumps([{"id": "only", "user_scenario": {"instructions": "x"}}]))
    try:
        assert tau2_compat.use_data_dir(tmp_path)
        # nothing a loaded tau2 module holds points into the package's data any more ...
        left = [f"{m.__name__}.{k}" for m in tau2_compat._tau2_modules() for k, v in vars(m).items()
                if isinstance(v, (str, Path)) and (f"{packaged}/" in f"{v}/")]
        assert not left, f"tau2 keeps data paths use_data_dir does not rebase: {left}"
        # ... and tau2's own loaders read the new directory
        assert airline.AIRLINE_TASK_SET_PATH == tasks and [t.id for t in get_tasks(None)] == ["only"]
        assert user_simulator.GLOBAL_USER_SIM_GUIDELINES_PATH.is_relative_to(tmp_path)
    finally:
        tau2_compat.use_data_dir(None)
    assert Path(utils.DATA_DIR) == packaged and airline.AIRLINE_TASK_SET_PATH.is_relative_to(packaged)


def test_retails_constructor_builds_the_toolkit_class_offer_item_details_swaps():
    from tau2.domains.retail import environment
    from tau2.domains.retail.tools import RetailTools
    from tau2.registry import registry

    assert not hasattr(RetailTools, "get_item_details"), "tau2's retail has get_item_details now: drop the patch"
    assert "RetailTools" in environment.get_environment.__code__.co_names
    try:
        assert tau2_compat.offer_item_details(True) and tau2_compat.item_details_offered()
        env = registry.get_env_constructor("retail")()
        assert env.tools.has_tool("get_item_details") and env.tools.tool_type("get_item_details") == "read"
        assert type(env.tools).__name__ == "RetailTools"
    finally:
        tau2_compat.offer_item_details(False)
    assert environment.RetailTools is RetailTools


def test_tau2s_nl_judge_calls_the_module_level_generate_set_judge_generate_routes():
    from tau2.evaluator.evaluator import evaluate_simulation
    from tau2.evaluator.evaluator_nl_assertions import NLAssertionsEvaluator

    code = NLAssertionsEvaluator.evaluate_nl_assertions.__func__.__code__
    assert {"generate", "DEFAULT_LLM_NL_ASSERTIONS"} <= set(code.co_names), "tau2's NL judge no longer calls generate"
    assert tau2_compat.judge_module().__name__ == NLAssertionsEvaluator.__module__
    # the reason the run picks ALL_WITH_NL_ASSERTIONS for such a task (rollout.rewards.evaluation_type)
    source = inspect.getsource(evaluate_simulation)
    assert "NL assertions are part of the reward basis, but they are not being evaluated" in source
    assert "evaluation_type == EvaluationType.ALL_WITH_NL_ASSERTIONS" in source
    assert "NLAssertionsEvaluator.calculate_reward" in source



@pytest.mark.parametrize("domain", ["mock", "airline", "retail"])
def test_a_domains_environment_works_on_the_db_it_is_given_and_hashes_it_through_its_tools(domain):
    """What tau2train.rollout.fast_env builds on, through compat.tau2: the domain's constructor
    takes `db=` (takes_db) and its tools work on that object (environment_db); there are no user
    tools (has_user_tools); Environment.get_db_hash asks the toolkit instance, so set_db_hash
    makes an environment's hash, reading the DB the tools hold at each call."""
    import copy

    from tau2.environment.environment import Environment
    from tau2.registry import registry

    stock = registry.get_env_constructor(domain)
    stock = getattr(stock, "__wrapped__", stock) if hasattr(stock, "fast_env_domain") else stock
    assert tau2_compat.takes_db(stock), f"tau2's {domain} constructor takes no {tau2_compat.DB_PARAMETER}= now"
    db = copy.deepcopy(tau2_compat.environment_db(stock()))
    env = stock(**{tau2_compat.DB_PARAMETER: db})
    assert tau2_compat.environment_db(env) is db, f"tau2's {domain} tools no longer work on env.tools.db as given"
    assert not tau2_compat.has_user_tools(env), f"tau2's {domain} has user tools now (a user DB fast_env does not share)"
    assert "get_db_hash" in Environment.get_db_hash.__code__.co_names, "Environment.get_db_hash no longer asks its tools"
    stock_hash = env.get_db_hash()
    tau2_compat.set_db_hash(env, lambda held: f"{id(held)}")
    assert env.get_db_hash() == f"{id(db)}"
    env.tools.db = other = copy.deepcopy(db)  # as update_db may replace it
    assert env.get_db_hash() == f"{id(other)}"
    assert stock(**{tau2_compat.DB_PARAMETER: db}).get_db_hash() == stock_hash  # other environments: tau2's own

# --- AReaL --------------------------------------------------------------------------------

def test_areals_get_logger_swaps_loggings_root_and_restore_stdlib_logging_undoes_it():
    """In a fresh interpreter: without the swap, restore_stdlib_logging is no longer needed."""
    code = (
        "import logging\n"
        "from areal.utils import logging as areal_logging\n"
        "areal_logging.getLogger('x')\n"
        "swapped = logging.Logger.root is not logging.root\n"
        "from tau2train.compat.areal import restore_stdlib_logging\n"
        "restore_stdlib_logging()\n"
        "print(swapped, logging.Logger.root is logging.root, logging.Logger.manager.root is logging.root)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "True", "True"], done.stdout


def test_areals_workflow_context_holds_the_task_id_and_stats_scope_the_rollout_side_reads(monkeypatch):
    from areal.infra import workflow_context
    from areal.utils import stats_tracker

    assert areal_compat.WORKFLOW_CONTEXT == workflow_context.__name__
    assert areal_compat.STATS_TRACKER == stats_tracker.__name__
    # AReaL's trackers are process-wide: this test's own, so what others recorded does not count
    monkeypatch.setattr(stats_tracker, "TRACKERS", {"": stats_tracker.DistributedStatsTracker()})
    previous = workflow_context.get()
    try:
        workflow_context.set(workflow_context.WorkflowContext(is_eval=False, task_id=7))
        assert areal_compat.rollout_task_id() == 7
        areal_compat.stats_scope().scalar(**{"tau2/probe": 1.0})
        workflow_context.set(workflow_context.WorkflowContext(is_eval=True, task_id=7))
        assert areal_compat.rollout_task_id() is None  # validation episodes: no filter judges them
        areal_compat.stats_scope().scalar(**{"tau2/probe": 0.25})
    finally:
        workflow_context.set(previous)
    # what AReaL exports (and logs to wandb): training's under rollout/, validation's under eval-rollout/
    exported = stats_tracker.export_all()
    probes = {k: v for k, v in exported.items() if "tau2/probe" in k and not k.endswith("__count")}
    assert probes == {"rollout/tau2/probe": 1.0, "eval-rollout/tau2/probe": 0.25}


# --- submitit / hydra-submitit-launcher ----------------------------------------------------

def test_the_launcher_plugin_builds_submitits_executor_by_module_attribute():
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    source = inspect.getsource(SlurmLauncher.launch)
    assert "submitit.AutoExecutor(" in source, "hydra-submitit-launcher no longer builds submitit.AutoExecutor in launch"


def test_sbatch_script_renders_submitits_own_script_for_an_array(tmp_path):
    import submitit

    from tau2train.compat.submitit import executor_class, sbatch_script

    class Marker(submitit.AutoExecutor):
        pass

    with executor_class(Marker):
        assert submitit.AutoExecutor is Marker
    assert submitit.AutoExecutor is not Marker
    executor = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="slurm")
    executor.update_parameters(slurm_gpus_per_node=8, slurm_cpus_per_task=40, timeout_min=60)
    script = sbatch_script(executor, 3)
    for line in ("#SBATCH --array=0-2", "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=40",
                 "-u -m submitit.core._submit"):
        assert line in script, script


# --- Hydra -------------------------------------------------------------------------------

def test_hydras_internals_take_the_arguments_tau2train_passes():
    from tau2train.compat.hydra import Hydra, expand_sweep
    from tau2train.config.overrides import parse_overrides

    compose = inspect.signature(Hydra.compose_config).parameters
    assert {"config_name", "overrides", "run_mode"} <= set(compose), list(compose)
    multirun = inspect.signature(Hydra.multirun).parameters
    assert {"config_name", "task_function", "overrides", "with_log_configuration"} <= set(multirun), list(multirun)
    points = expand_sweep(parse_overrides(["a=1,2", "b=x,y"]))
    assert points == [["a=1", "b=x"], ["a=1", "b=y"], ["a=2", "b=x"], ["a=2", "b=y"]]


def test_the_areal_trainer_hooks_tau2trains_trainer_overrides_are_still_called():
    """compat.areal.with_trainer_hooks overrides two private hooks of AReaL's PPOTrainer for
    tau2train/launch/trainer.py: the scheduler's construction and the rollout proxies' start
    (with the flag it reads). AReaL still builds its Slurm scheduler with the constructor's
    defaults, the reason for slurm_scheduler."""
    from areal.infra.scheduler import slurm
    from areal.trainer import rl_trainer
    from areal.trainer.rl_trainer import PPOTrainer

    assert areal_compat.TRAINER == rl_trainer.__name__ and areal_compat.SLURM_SCHEDULER == slurm.__name__
    for hook, caller in ((areal_compat.SCHEDULER_HOOK, "__init__"), (areal_compat.PROXY_HOOK, "train")):
        assert callable(getattr(PPOTrainer, hook, None)), f"AReaL's PPOTrainer has no {hook} now"
        assert hook in inspect.getsource(getattr(PPOTrainer, caller)), f"PPOTrainer.{caller} no longer calls {hook}"
    assert f"self.{areal_compat.PROXY_STARTED}" in inspect.getsource(PPOTrainer._ensure_proxy_started)
    assert f"self.{areal_compat.PROXY_STARTED} = False" in inspect.getsource(PPOTrainer.__init__)
    builds = inspect.getsource(PPOTrainer._init_scheduler)
    assert "SlurmScheduler(exp_config=self.config)" in builds, \
        "AReaL builds its Slurm scheduler otherwise now: does it pass the workers' container settings?"
    wanted = {"exp_config", "container_type", "container_mounts", "srun_additional_args"}
    assert wanted <= set(inspect.signature(slurm.SlurmScheduler).parameters), "SlurmScheduler's arguments changed"


def test_with_trainer_hooks_routes_areals_scheduler_and_proxy_start_to_the_subclass():
    """On AReaL's own PPOTrainer (no workers: its hooks alone): own_scheduler's scheduler is the
    one built, None leaves AReaL's; proxies_started runs once, when AReaL's proxy start has
    run (a rollout that needs no proxy: it just sets the flag)."""
    import types

    from areal.trainer.rl_trainer import PPOTrainer

    class Trainer(areal_compat.with_trainer_hooks(PPOTrainer)):
        scheduler_made = None
        started = 0

        def own_scheduler(self):
            return self.scheduler_made

        def proxies_started(self):
            self.started += 1

    assert issubclass(Trainer, PPOTrainer)
    trainer = Trainer.__new__(Trainer)
    trainer.config = types.SimpleNamespace(scheduler=types.SimpleNamespace(type="tau2train-none"))
    trainer.scheduler_made = sentinel = object()
    assert trainer._init_scheduler() is sentinel
    trainer.scheduler_made = None
    with pytest.raises(NotImplementedError, match="tau2train-none"):  # AReaL's own, for that type
        trainer._init_scheduler()
    trainer.config.scheduler.type = "local"
    trainer.rollout, trainer.eval_rollout, trainer._proxy_started = None, None, False
    trainer._ensure_proxy_started()
    assert trainer._proxy_started and trainer.started == 1
    trainer._ensure_proxy_started()
    assert trainer.started == 1


def test_report_sums_gets_counts_from_areals_averaging_rollout_controller():
    """AReaL's RolloutController.export_stats averages what its workers recorded (a 0/1 per
    episode becomes a share) and drops the counts; report_sums keeps AReaL's call and its
    means, and gives the keys it names as sums over the workers (tau2train.launch.trainer)."""
    from areal.infra.controller.rollout_controller import RolloutController
    from areal.utils.stats_tracker import DistributedStatsTracker

    def worker_export(failed: list[int]) -> dict[str, float]:  # what a worker's RPC answers
        tracker = DistributedStatsTracker("rollout")
        for value in failed:
            tracker.scalar(**{"tau2/episodes_failed/user_sim": value, "reward": 0.25})
        return tracker.export()

    workers = [worker_export([1, 0, 0, 1]), worker_export([1, 0])]
    calls = []
    controller = RolloutController.__new__(RolloutController)  # its stats export alone
    controller._collective_rpc = lambda *args, **kwargs: calls.append(kwargs.get("method")) or workers
    failed = "rollout/tau2/episodes_failed/user_sim"
    assert RolloutController.export_stats(controller) == {failed: 0.5, "rollout/reward": 0.25}
    assert areal_compat.report_sums(controller, ("rollout/tau2/",))
    assert controller.export_stats() == {failed: 3.0, "rollout/reward": 0.25}
    assert calls == [areal_compat.EXPORT_STATS_RPC] * 2
    assert not areal_compat.report_sums(object(), ("rollout/tau2/",))  # no such RPC: left as it is


def test_areal_drops_a_group_whose_episode_raises_and_keeps_the_rest_of_one_returning_none(monkeypatch):
    """AReaL's GroupedRolloutWorkflow, which runs a GRPO group's episodes: one raising drops
    the group (AReaL's OpenAIProxyWorkflow re-raises what the agent raised), one returning
    None leaves the group the others. drop_episodes_alone makes the proxy workflow return None
    for the failure it names, and only for it, in a process running AReaL's engine."""
    from areal.experimental.openai.proxy import workflow as proxy_workflow
    from areal.infra import remote_inf_engine
    from areal.experimental.openai import InteractionWithTokenLogpReward
    from areal.infra.remote_inf_engine import GroupedRolloutWorkflow

    assert areal_compat.REMOTE_ENGINE == remote_inf_engine.__name__
    assert areal_compat.PROXY_WORKFLOW == proxy_workflow.__name__
    source = inspect.getsource(proxy_workflow.OpenAIProxyWorkflow.arun_episode)
    assert "await self._run_agent(" in source and "will be rejected" in source and "raise\n" in source

    class Failed(Exception):
        pass

    class Episodes:  # the proxy workflow's place under AReaL's group: episode i's outcome
        def __init__(self, outcomes):
            self.outcomes = iter(outcomes)

        async def arun_episode(self, engine, data):
            outcome = next(self.outcomes)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

    def group(outcomes):
        return asyncio.run(GroupedRolloutWorkflow(Episodes(outcomes), len(outcomes), logging.getLogger("t")).arun_episode(None, {}))

    # each episode: its completions by id, as the proxy workflow exports them
    a, c = ({key: InteractionWithTokenLogpReward(reward=1.0)} for key in "ac")
    with pytest.raises(Failed):
        group([a, Failed(), c])
    assert group([a, None, c]) == {**a, **c}
    assert group([None, None]) is None

    async def agent_failed(self, engine, data):  # what the proxy workflow does when the agent raises
        raise data["raised"]

    with monkeypatch.context() as elsewhere:  # a process where AReaL's engine runs no workflow
        elsewhere.delitem(sys.modules, areal_compat.REMOTE_ENGINE)
        assert not areal_compat.drop_episodes_alone(Failed)
    monkeypatch.setattr(proxy_workflow.OpenAIProxyWorkflow, "arun_episode", agent_failed)
    assert areal_compat.drop_episodes_alone(Failed)
    assert areal_compat.drop_episodes_alone(Failed)  # once: not wrapped twice
    patched = proxy_workflow.OpenAIProxyWorkflow.arun_episode
    assert patched.__wrapped__ is agent_failed
    assert asyncio.run(patched(None, None, {"raised": Failed()})) is None
    with pytest.raises(ValueError):
        asyncio.run(patched(None, None, {"raised": ValueError()}))


def test_areals_rollout_worker_builds_sglangs_command_with_the_static_method_launch_sglang_as_replaces():
    import inspect

    from areal.api.cli_args import SGLangConfig
    from areal.engine import sglang_remote

    from tau2train.compat.areal import launch_sglang_as

    # the worker builds the command through the class's static method, which a CPU run replaces
    assert "SGLangConfig.build_cmd_from_args" in inspect.getsource(sglang_remote)
    original = SGLangConfig.__dict__["build_cmd_from_args"]
    assert isinstance(original, staticmethod)
    try:
        launch_sglang_as("tau2train.serving.cpu_sglang", "extra")
        cmd = SGLangConfig.build_cmd_from_args({"model_path": "/m", "host": "10.0.0.1", "port": 31000})
        assert cmd[:4] == [sys.executable, "-m", "tau2train.serving.cpu_sglang", "extra"]
        assert cmd[4:] == ["--model-path", "/m", "--host", "10.0.0.1", "--port", "31000"]
    finally:
        SGLangConfig.build_cmd_from_args = original


@pytest.fixture
def areal_logit_readers():
    """AReaL's FSDPEngine methods that logits_only_where_read replaces, put back afterwards."""
    from areal.engine import fsdp_engine

    names = (*areal_compat.LOGIT_READERS, "_prepare_mb_inputs")
    saved = {name: fsdp_engine.FSDPEngine.__dict__[name] for name in names}
    yield fsdp_engine.FSDPEngine
    for name, method in saved.items():
        setattr(fsdp_engine.FSDPEngine, name, method)


def test_areals_fsdp_engine_reads_logits_through_the_methods_logits_only_where_read_wraps(areal_logit_readers):
    from areal.engine import fsdp_engine
    from transformers.models.qwen3 import modeling_qwen3

    # the forward gets the prepared inputs whole, and hands the logits to the readers
    source = inspect.getsource(fsdp_engine.FSDPEngine.forward_backward_batch)
    assert "inputs, ctx = self._prepare_mb_inputs(mb_item)" in source and "self.model(**inputs)" in source
    for name in areal_compat.LOGIT_READERS:
        assert list(inspect.signature(getattr(areal_logit_readers, name)).parameters)[:2] == ["self", "logits"]
    # transformers keeps the logits of a tensor of positions
    assert "else logits_to_keep" in inspect.getsource(modeling_qwen3.Qwen3ForCausalLM.forward)


def test_logits_only_where_read_gives_areals_own_values_and_gradients_at_the_rows_read(areal_logit_readers):
    import types

    import torch
    from transformers import AutoModelForCausalLM

    from tau2train.serving.tiny_qwen import tiny_qwen_dir

    engine = areal_logit_readers
    original = engine._compute_logprobs_entropy
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir(), dtype=torch.float32)
    ids = torch.randint(0, 151000, (1, 40), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(40, dtype=torch.bool)
    mask[30:38] = True
    fake = types.SimpleNamespace(config=types.SimpleNamespace(temperature=0.7),
                                 parallel_helper=types.SimpleNamespace(sp_size=1, tp_size=1))

    def results(patched: bool):
        model.zero_grad()
        rows = areal_compat.live_rows({"loss_mask": mask}, 40)
        fake._tau2train_live = (rows, 40) if patched else None
        logits = model(input_ids=ids, **({"logits_to_keep": rows} if patched else {})).logits.squeeze(0)
        read = engine._compute_logprobs_entropy if patched else original
        logprobs, entropy = read(fake, logits, {"input_ids": ids}, 0)
        (logprobs[mask].sum() + entropy[mask].sum()).backward()
        return logprobs, entropy, model.model.embed_tokens.weight.grad.clone()

    full = results(patched=False)
    assert areal_compat.logits_only_where_read() is True
    kept = results(patched=True)
    rows = areal_compat.live_rows({"loss_mask": mask}, 40)
    assert rows.tolist() == list(range(29, 38))  # the trained positions and the one before
    torch.testing.assert_close(kept[0][rows], full[0][rows])
    torch.testing.assert_close(kept[1][rows], full[1][rows])
    torch.testing.assert_close(kept[2], full[2])  # the same gradients
    assert kept[0][:29].abs().sum() == 0 and kept[0][38:].abs().sum() == 0


def test_when_imported_patches_a_module_as_it_loads_and_one_loaded_at_once(tmp_path, monkeypatch):
    (tmp_path / "tau2train_probe_mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    areal_compat.when_imported("tau2train_probe_mod", lambda module: seen.append(module.VALUE))
    assert seen == [] and "tau2train_probe_mod" not in sys.modules
    import tau2train_probe_mod  # noqa: F401

    assert seen == [1]
    areal_compat.when_imported("tau2train_probe_mod", lambda module: seen.append(2))
    assert seen == [1, 2]
    assert not any(isinstance(f, areal_compat._AfterImport) for f in sys.meta_path)
    del sys.modules["tau2train_probe_mod"]


def test_a_training_prompt_is_the_prompt_evaluation_and_sft_render():
    """The same tools reach the chat template in three key orders: AReaL's proxy validates each
    training request as openai's CompletionCreateParams (a TypedDict: pydantic rebuilds every
    tool in its declared order, function before type, name before description); SGLang's chat
    server, and the CPU server after it, dump its Tool model (type first, description before
    name); SFT rows offer them as episodes send them. tau2train's template sorts a tool's keys,
    so all three render the same prompt: a tiny model trained by RL on the proxy's order and
    evaluated on SGLang's (before the sort) solved 0.3 of the tasks in training that it solved
    0.74 of in evaluation."""
    import sglang
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    from pydantic import TypeAdapter
    from sglang.srt.entrypoints.openai.protocol import Tool
    from transformers import AutoTokenizer

    from tau2train.rollout.players import agent_tool_schemas
    from tau2train.serving.tiny_qwen import tiny_qwen_dir

    proxy = Path(importlib.import_module("areal").__file__).parent / "experimental/openai/proxy/proxy_rollout_server.py"
    assert "request: CompletionCreateParams," in proxy.read_text()
    # (read, not imported: the module loads SGLang's GPU side)
    serving_chat = Path(sglang.__file__).parent / "srt" / "entrypoints" / "openai" / "serving_chat.py"
    assert "tools = [item.model_dump() for item in request.tools]" in serving_chat.read_text()
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir())
    messages = [{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"}]
    for domain in ("mock", "airline"):
        sent = agent_tool_schemas(domain)
        request = {"model": "policy", "messages": messages, "tools": sent}
        by_proxy = list(TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(request)["tools"])
        by_sglang = [Tool.model_validate(tool).model_dump() for tool in sent]
        assert json.dumps(by_proxy) != json.dumps(by_sglang)  # the orders differ upstream
        prompts = {json.dumps(tokenizer.apply_chat_template(messages, tools=tools, tokenize=False))
                   for tools in (sent, by_proxy, by_sglang)}
        assert len(prompts) == 1


def test_areals_squeue_reader_knows_every_state_a_failed_node_leaves():
    """AReaL 1.0.4's squeue reader raises KeyError on a state its table lacks: a role job whose
    node failed (NODE_FAIL) made every later check of the run fail that way, its teardown's too
    (test_areal_multihost). compat.areal.map_slurm_end_states adds them; the guard fails, saying
    so, once AReaL's table has its own entries or moves."""
    from areal.infra.utils import slurm

    assert areal_compat.SLURM_UTILS == slurm.__name__
    assert isinstance(slurm.STATUS_MAPPING, dict) and "RUNNING" in slurm.STATUS_MAPPING, \
        "AReaL's squeue state table moved: does query_jobs still read STATUS_MAPPING?"
    assert "STATUS_MAPPING[state]" in inspect.getsource(slurm.query_jobs), "query_jobs reads states otherwise now"
    areal_compat.map_slurm_end_states()
    assert slurm.STATUS_MAPPING["NODE_FAIL"] is slurm.JobState.FAILED
    assert slurm.STATUS_MAPPING["BOOT_FAIL"] is slurm.JobState.FAILED
    assert slurm.STATUS_MAPPING["CONFIGURING"] is slurm.JobState.PENDING
    # the states AReaL maps itself are left as it maps them
    assert slurm.STATUS_MAPPING["TIMEOUT"] is slurm.JobState.COMPLETED
    assert slurm.STATUS_MAPPING["COMPLETING"] is slurm.JobState.RUNNING


def test_the_ray_private_state_the_watch_reads_is_still_there():
    """tau2train.compat.ray reads Ray 2.60's GCS tables without the dashboard (the host-loss
    watch's actors and nodes; cluster=ray's node list, without a driver): a guard that fails
    when an upgrade moves them."""
    import inspect

    import ray
    from ray._private import state
    from ray.core.generated.common_pb2 import ActorDeathCause, ActorDiedErrorContext

    assert {"job_id", "actor_state_name"} <= set(inspect.signature(state.actors).parameters)
    source = inspect.getsource(state.GlobalState._gen_actor_info)
    for key in ("Name", "State", "IPAddress", "NodeID", "DeathCause", "StartTime", "ActorID"):
        assert f'"{key}"' in source, key
    assert callable(ray.nodes) and hasattr(ray.JobID, "from_hex")
    assert "actor_died_error_context" in ActorDeathCause.DESCRIPTOR.fields_by_name
    assert ActorDiedErrorContext.NODE_DIED in ActorDiedErrorContext.Reason.values()
    from ray._raylet import InnerGcsClient
    from ray.core.generated.gcs_pb2 import GcsNodeInfo

    # GcsClient forwards to its InnerGcsClient (its __getattr__)
    assert callable(getattr(InnerGcsClient, "get_all_node_info", None))
    fields = GcsNodeInfo.DESCRIPTOR.fields_by_name
    for name in ("node_id", "node_manager_address", "node_manager_hostname", "node_manager_port", "state",
                 "resources_total", "is_head_node"):
        assert name in fields, name
    assert GcsNodeInfo.ALIVE != GcsNodeInfo.DEAD
