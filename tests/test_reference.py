"""The four upstream AReaL τ² example runs, reproduced from config groups.

Expected values are the upstream example configs' training settings (AReaL
examples/tau2 at 4aef98d8d), resolved through AReaL's own dataclasses. Deliberate
differences, listed in the README, are not compared: experiment/trial names, fileroot
placeholders, dataset path/split naming, worker env vars and the tau2 fork install line,
and the MoE runs' user-simulator name.
"""

from __future__ import annotations

import pytest
from helpers.cli import USER_SIM, flatten, slurm_overrides

from tau2train.config.compose import compose
from tau2train.launch.modes import checked

# Settings all four reference runs share.
COMMON = {
    'actor.adv_norm.eps': 1e-05,
    'actor.adv_norm.mean_level': 'batch',
    'actor.adv_norm.std_level': 'batch',
    'actor.adv_norm.std_unbiased': True,
    'actor.archon.attn_type': 'varlen',
    'actor.archon.offload_params': False,
    'actor.disable_dropout': True,
    'actor.discount': 1.0,
    'actor.dtype': 'bfloat16',
    'actor.eps_clip': 0.4,
    'actor.gae_lambda': 1.0,
    'actor.grad_reduce_dtype': 'float32',
    'actor.gradient_checkpointing': True,
    'actor.init_from_scratch': False,
    'actor.kl_ctl': 0.0,
    'actor.max_new_tokens': 8192,
    'actor.mb_spec.granularity': 1,
    'actor.mb_spec.n_mbs': 1,
    'actor.mb_spec.n_mbs_divisor': 1,
    'actor.megatron.ddp.grad_reduce_in_fp32': True,
    'actor.megatron.ddp.overlap_grad_reduce': False,
    'actor.megatron.ddp.overlap_param_gather': False,
    'actor.megatron.ddp.use_distributed_optimizer': True,
    'actor.megatron.moe_router_dtype': 'fp32',
    'actor.megatron.moe_token_dispatcher_type': 'alltoall',
    'actor.megatron.recompute_granularity': 'full',
    'actor.megatron.recompute_method': 'uniform',
    'actor.megatron.recompute_num_layers': 1,
    'actor.megatron.wrap_with_ddp': True,
    'actor.optimizer.beta1': 0.9,
    'actor.optimizer.beta2': 0.999,
    'actor.optimizer.eps': 1e-08,
    'actor.optimizer.gradient_clipping': 1.0,
    'actor.optimizer.hysteresis': 2,
    'actor.optimizer.initial_loss_scale': 4294967296.0,
    'actor.optimizer.loss_scale_window': 5.0,
    'actor.optimizer.lr_scheduler_type': 'constant',
    'actor.optimizer.min_loss_scale': 1.0,
    'actor.optimizer.min_lr_ratio': 0.0,
    'actor.optimizer.type': 'adam',
    'actor.optimizer.warmup_steps_proportion': 0.001,
    'actor.pad_to_maximum': True,
    'actor.ppo_n_minibatches': 1,
    'actor.recompute_logprob': True,
    'actor.rejection_sampling.metric': 'ratio',
    'actor.rejection_sampling.upper': 5.0,
    'actor.reward_bias': -0.5,
    'actor.reward_clip': 20.0,
    'actor.reward_norm': None,
    'actor.reward_scaling': 10.0,
    'actor.scheduling_spec.0.cmd': 'python3 -m areal.infra.rpc.rpc_server',
    'actor.scheduling_spec.0.gpu': 1,
    'actor.scheduling_spec.0.port_count': 2,
    'actor.scheduling_spec.0.task_type': 'worker',
    'actor.temperature': 1.0,
    'actor.use_decoupled_loss': True,
    'cluster.n_gpus_per_node': 8,
    'cluster.name_resolve.type': 'nfs',
    'econfig.add_thinking_tool': False,
    'econfig.domain': 'airline',
    'econfig.max_steps': 50,
    'econfig.solo_mode': False,
    'econfig.user_llm_args.temperature': 0.0,
    'enable_offload': False,
    'evaluator.freq_epochs': None,
    'evaluator.freq_secs': None,
    'evaluator.freq_steps': None,
    'gconfig.greedy': False,
    'gconfig.max_new_tokens': 8192,
    'gconfig.min_new_tokens': 0,
    'gconfig.temperature': 1.0,
    'gconfig.top_k': 100000000,
    'gconfig.top_p': 1.0,
    'perf_tracer.enabled': False,
    'perf_tracer.save_interval': 1,
    'perf_tracer.session_tracer.enabled': True,
    'perf_tracer.session_tracer.flush_threshold': 100,
    'recover.freq_epochs': 1,
    'recover.freq_secs': 3600,
    'recover.freq_steps': None,
    'recover.mode': 'disabled',
    'ref.disable_dropout': True,
    'ref.dtype': 'bfloat16',
    'ref.enable_tree_training': False,
    'ref.optimizer': None,
    'rollout.agent.chat_template_type': 'hf',
    'rollout.agent.export_style': 'individual',
    'rollout.agent.mode': 'inline',
    'rollout.agent.reasoning_parser': 'qwen3',
    'rollout.agent.session_timeout_seconds': 3600,
    'rollout.agent.subproc_max_workers': 4,
    'rollout.agent.tool_call_parser': 'qwen25',
    'rollout.agent.turn_discount': 1.0,
    # upstream's econfig.invalid_format_penalty and econfig.turn_discount: the reward group's now
    'reward.format_penalty': 0.1,
    'reward.turn_discount': 1.0,
    'rollout.dump_to_file': True,
    'rollout.max_head_offpolicyness': 2,
    'rollout.queue_size': None,
    'rollout.request_retries': 3,
    'rollout.request_timeout': 3600.0,
    'rollout.setup_timeout': 300.0,
    'saver.freq_epochs': 1,
    'saver.freq_secs': None,
    'saver.freq_steps': None,
    'saver.mode': 'auto',
    'seed': 1,
    'sglang.attention_backend': 'fa3',
    'sglang.context_length': 32768,
    'sglang.dtype': 'bfloat16',
    'sglang.log_level': 'warning',
    'sglang.max_prefill_tokens': 32768,
    'sglang.mem_fraction_static': 0.8,
    'sglang.random_seed': 1,
    'sglang.schedule_policy': 'lpm',
    'sglang.skip_tokenizer_init': True,
    'stats_logger.wandb.mode': 'online',
    'total_train_epochs': 200,
    'total_train_steps': 500,
    'train_dataset.drop_last': True,
    'train_dataset.max_length': 1024,
    'train_dataset.num_workers': 4,
    'train_dataset.pin_memory': True,
    'train_dataset.shuffle': True,
    'train_dataset.type': 'rl',
    'valid_dataset.batch_size': 16,
    'valid_dataset.drop_last': False,
    'valid_dataset.num_workers': 4,
    'valid_dataset.pin_memory': True,
    'valid_dataset.shuffle': True,
    'valid_dataset.type': 'rl',
    'vllm.dtype': 'bfloat16',
    'vllm.gpu_memory_utilization': 0.9,
    'vllm.max_model_len': 32768,
    'vllm.seed': 1,
    'vllm.skip_tokenizer_init': False,
}

# What differs between the four reference runs.
PER_MODEL = {
    'qwen3_1_7b': {
        'actor.archon.ac_mode': 'selective',
        'actor.archon.ac_preserve_rng_state': False,
        'actor.archon.enable_compile': False,
        'actor.backend': 'archon:d2',
        'actor.enable_tree_training': True,
        'actor.mb_spec.max_tokens_per_mb': 24576,
        'actor.megatron.use_deterministic_algorithms': False,
        'actor.optimizer.lr': 1.7e-05,
        'actor.optimizer.weight_decay': 0.017,
        'actor.path': 'Qwen/Qwen3-1.7B',
        'actor.scheduling_spec.0.cpu': 2,
        'actor.scheduling_spec.0.mem': 16,
        'cluster.n_nodes': 1,
        'gconfig.max_tokens': 16384,
        'gconfig.n_samples': 8,
        'ref.backend': 'archon:d2',
        'ref.mb_spec.max_tokens_per_mb': 24576,
        'ref.path': 'Qwen/Qwen3-1.7B',
        'rollout.agent.engine_max_tokens': 16384,
        'rollout.backend': 'sglang:d6',
        'rollout.consumer_batch_size': 16,
        'rollout.enable_rollout_tracing': True,
        'rollout.max_concurrent_rollouts': 256,
        'scheduler.type': 'local',
        'sglang.model_path': 'Qwen/Qwen3-1.7B',
        'tokenizer_path': 'Qwen/Qwen3-1.7B',
        'train_dataset.batch_size': 16,
        'vllm.model': 'Qwen/Qwen3-1.7B',
    },
    'qwen3_8b': {
        'actor.archon.ac_mode': 'selective',
        'actor.archon.ac_preserve_rng_state': False,
        'actor.archon.enable_compile': False,
        'actor.backend': 'archon:d8',
        'actor.enable_tree_training': True,
        'actor.mb_spec.max_tokens_per_mb': 32768,
        'actor.megatron.use_deterministic_algorithms': False,
        'actor.optimizer.lr': 1.7e-05,
        'actor.optimizer.weight_decay': 0.017,
        'actor.path': 'Qwen/Qwen3-8B',
        'actor.scheduling_spec.0.cpu': 4,
        'actor.scheduling_spec.0.mem': 32,
        'cluster.n_nodes': 3,
        'gconfig.max_tokens': 32767,
        'gconfig.n_samples': 8,
        'ref.backend': 'archon:d8',
        'ref.mb_spec.max_tokens_per_mb': 32768,
        'ref.path': 'Qwen/Qwen3-8B',
        'rollout.agent.engine_max_tokens': 32767,
        'rollout.backend': 'sglang:d16',
        'rollout.consumer_batch_size': 30,
        'rollout.enable_rollout_tracing': False,
        'rollout.max_concurrent_rollouts': 256,
        'scheduler.type': 'slurm',
        'sglang.model_path': 'Qwen/Qwen3-8B',
        'tokenizer_path': 'Qwen/Qwen3-8B',
        'train_dataset.batch_size': 30,
        'vllm.model': 'Qwen/Qwen3-8B',
    },
    'qwen3_30b_a3b': {
        'actor.archon.ac_mode': 'full',
        'actor.archon.ac_preserve_rng_state': True,
        'actor.archon.enable_compile': True,
        'actor.backend': 'megatron:(attn:d4p4t2|ffn:d2p4e4)',
        'actor.enable_tree_training': False,
        'actor.mb_spec.max_tokens_per_mb': 32768,
        'actor.megatron.use_deterministic_algorithms': True,
        'actor.optimizer.lr': 5e-06,
        'actor.optimizer.weight_decay': 0.005,
        'actor.path': 'Qwen/Qwen3-30B-A3B',
        'actor.scheduling_spec.0.cpu': 4,
        'actor.scheduling_spec.0.mem': 32,
        'cluster.n_nodes': 8,
        'gconfig.max_tokens': 30000,
        'gconfig.n_samples': 8,
        'ref.backend': 'megatron:(attn:d4p4t2|ffn:d2p4e4)',
        'ref.mb_spec.max_tokens_per_mb': 32768,
        'ref.path': 'Qwen/Qwen3-30B-A3B',
        'rollout.agent.engine_max_tokens': 30000,
        'rollout.backend': 'sglang:d8t4',
        'rollout.consumer_batch_size': 16,
        'rollout.enable_rollout_tracing': True,
        'rollout.max_concurrent_rollouts': 128,
        'scheduler.type': 'slurm',
        'sglang.model_path': 'Qwen/Qwen3-30B-A3B',
        'tokenizer_path': 'Qwen/Qwen3-30B-A3B',
        'train_dataset.batch_size': 16,
        'vllm.model': 'Qwen/Qwen3-30B-A3B',
    },
    'qwen3_235b_a22b': {
        'actor.archon.ac_mode': 'full',
        'actor.archon.ac_preserve_rng_state': True,
        'actor.archon.enable_compile': True,
        'actor.backend': 'megatron:(attn:d1p12t4|ffn:d1p12e4)',
        'actor.enable_tree_training': False,
        'actor.mb_spec.max_tokens_per_mb': 32768,
        'actor.megatron.use_deterministic_algorithms': True,
        'actor.optimizer.lr': 5e-06,
        'actor.optimizer.weight_decay': 0.005,
        'actor.path': 'Qwen/Qwen3-235B-A22B',
        'actor.scheduling_spec.0.cpu': 4,
        'actor.scheduling_spec.0.mem': 32,
        'cluster.n_nodes': 10,
        'gconfig.max_tokens': 30000,
        'gconfig.n_samples': 16,
        'ref.backend': 'megatron:(attn:d1p12t4|ffn:d1p12e4)',
        'ref.mb_spec.max_tokens_per_mb': 32768,
        'ref.path': 'Qwen/Qwen3-235B-A22B',
        'rollout.agent.engine_max_tokens': 30000,
        'rollout.backend': 'sglang:d4t8',
        'rollout.consumer_batch_size': 16,
        'rollout.enable_rollout_tracing': True,
        'rollout.max_concurrent_rollouts': 128,
        'scheduler.type': 'slurm',
        'sglang.model_path': 'Qwen/Qwen3-235B-A22B',
        'tokenizer_path': 'Qwen/Qwen3-235B-A22B',
        'train_dataset.batch_size': 16,
        'vllm.model': 'Qwen/Qwen3-235B-A22B',
    },
}


@pytest.mark.parametrize("model", sorted(PER_MODEL))
def test_model_on_airline_reproduces_upstream_config(model, tmp_path, monkeypatch):
    # as a logged-in user's shell: wandb online, as upstream
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    cluster = [] if model == "qwen3_1_7b" else slurm_overrides(tmp_path)
    composed = compose([f"model={model}", "domain=airline", USER_SIM, *cluster])
    checked(composed)
    actual = flatten(composed.config)
    expected = {**COMMON, **PER_MODEL[model]}
    if cluster:  # deliberate difference (README): a requeued Slurm job resumes its trial
        expected["recover.mode"] = "auto"
    mismatches = {
        key: (actual.get(key, "<absent>"), want)
        for key, want in expected.items()
        if actual.get(key, "<absent>") != want
    }
    assert mismatches == {}, f"(ours, upstream) for {model}: {mismatches}"


def test_default_allocation_follows_the_model(tmp_path):
    composed = compose(["model=qwen3_8b", *slurm_overrides(tmp_path)])
    assert composed.choices["allocation"] == "n3_sglang_d16_archon_d8"
    assert composed.config.cluster.n_nodes == 3
    assert (composed.config.rollout.backend, composed.config.actor.backend) == ("sglang:d16", "archon:d8")


def test_names_and_paths_follow_the_choices():
    # the reward group's numbers set away from AReaL's defaults (turn_discount 1, scaling 1, bias 0)
    exp = compose(["model=qwen3_8b", "domain=retail", "reward.turn_discount=0.9", "reward.scaling=4.0",
                   "reward.bias=0.25"]).config
    assert exp.experiment_name == "tau2-qwen3-8b-retail"
    assert exp.trial_name == "trial0"
    for path in (exp.tokenizer_path, exp.sglang.model_path, exp.vllm.model, exp.ref.path,
                 exp.rollout.tokenizer_path):
        assert path == exp.actor.path == "Qwen/Qwen3-8B"
    assert exp.econfig.domain == "retail"
    # AReaL's own keys carry them
    assert exp.rollout.agent.turn_discount == 0.9
    assert (exp.actor.reward_scaling, exp.actor.reward_bias) == (4.0, 0.25)
