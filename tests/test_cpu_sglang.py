"""The CPU test doubles for AReaL's rollout side: the tiny Qwen3 (tau2train/serving/tiny_qwen.py) and the
CPU server speaking SGLang's HTTP protocol (tau2train/serving/cpu_sglang.py; helpers/cpu_sglang.py adds forcing), checked against tiktoken,
a teacher-forced pass of the model, and AReaL's own SGLang client."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import torch
from helpers.cpu_sglang import CPUSGLangServer, SamplingParams
from helpers.served import served

from tau2train.serving.tiny_qwen import (
    ADDED_TOKENS,
    FIRST_ADDED_ID,
    IM_END_ID,
    IM_START_ID,
    QWEN_PATTERN,
    build_tiny_qwen,
    load_ranks,
    tiny_qwen_dir,
    tiny_qwen_path,
    tiny_qwen_width,
)

TESTS_DIR = Path(__file__).parent
PROMPT = [9707, 1879, 11, 1246, 525, 498, 30]  # "Hello world, how are you?" in Qwen's BPE
TEXTS = [
    "Hello world, it's 2024! I'LL say: don't.",
    "你好，世界。我是通义千问，很高兴认识你！",
    "def area(r):\n    return 3.14159 * r ** 2  # πr²\n\n\n",
    "  leading spaces,\ttabs\t\tand\r\nCRLF lines   \n\n trailing   ",
    "1234567890 +3.5e-7 0x1F #W2378156 $1,299.99",
    'naïve café, Ünïcödé; emoji 🙂👍; {"json": [1, 2]}',
]


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_qwen() -> Path:
    return tiny_qwen_dir()


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen)


@pytest.fixture(scope="module")
def model(tiny_qwen):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_qwen, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def server(tiny_qwen):
    """A server shared by the tests that leave its weights and state as they found them."""
    yield from served(CPUSGLangServer(tiny_qwen))


@pytest.fixture
def own_server(tiny_qwen):
    """A server of the test's own, for tests that reload weights or pause it."""
    yield from served(CPUSGLangServer(tiny_qwen))


@pytest.fixture(scope="module")
def perturbed(model, tmp_path_factory) -> tuple[Path, object]:
    """The tiny Qwen with noise added to every weight, saved as a checkpoint directory."""
    from transformers import AutoModelForCausalLM

    path = tmp_path_factory.mktemp("perturbed")
    other = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32).eval()
    other.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    other.save_pretrained(path)
    return path, other


def generate(server: CPUSGLangServer, input_ids=PROMPT, **sampling) -> dict:
    body = {"input_ids": input_ids, "sampling_params": sampling, "return_logprob": True}
    response = requests.post(f"{server.base_url}/generate", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def logprobs_of(result: dict) -> list[float]:
    return [lp for lp, _, _ in result["meta_info"]["output_token_logprobs"]]


@torch.inference_mode()
def teacher_forced(model, prompt: list[int], output: list[int], temperature: float = 1.0) -> list[float]:
    """log p(output[i] | prompt + output[:i]) from one full forward pass, logits / temperature."""
    logits = model(input_ids=torch.tensor([prompt + output])).logits[0, len(prompt) - 1 : -1]
    logprobs = torch.log_softmax(logits / temperature, dim=-1)
    return logprobs[torch.arange(len(output)), torch.tensor(output)].tolist()


# -- the tokenizer and the model --------------------------------------------------------------
def test_tokenizer_encodes_as_tiktoken_with_qwens_ranks(tokenizer):
    import tiktoken

    specials = {token: i for i, (token, _) in enumerate(ADDED_TOKENS, start=FIRST_ADDED_ID)}
    encoding = tiktoken.Encoding(
        "qwen", pat_str=QWEN_PATTERN, mergeable_ranks=load_ranks(), special_tokens=specials
    )
    for text in TEXTS:
        ids = encoding.encode_ordinary(text)
        assert tokenizer.encode(text, add_special_tokens=False) == ids, text
        assert tokenizer.decode(ids) == text
    chat = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{}\n</tool_call><|im_end|>"
    assert tokenizer.encode(chat, add_special_tokens=False) == encoding.encode(chat, allowed_special="all")
    # Qwen2/Qwen3's own ids for a few common tokens: the ranks are Qwen's
    assert tokenizer.encode("Hello world", add_special_tokens=False) == [9707, 1879]


def test_added_tokens_sit_at_qwen3_ids(tokenizer):
    assert len(tokenizer) == 151669
    for token_id, (token, _) in enumerate(ADDED_TOKENS, start=FIRST_ADDED_ID):
        assert tokenizer.convert_tokens_to_ids(token) == token_id
    # the ids Qwen3 publishes (tokenizer_config.json's added_tokens_decoder)
    published = {
        "<|endoftext|>": 151643,
        "<|im_start|>": 151644,
        "<|im_end|>": 151645,
        "<|video_pad|>": 151656,
        "<tool_call>": 151657,
        "</tool_call>": 151658,
        "<tool_response>": 151665,
        "</tool_response>": 151666,
        "<think>": 151667,
        "</think>": 151668,
    }
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in published} == published
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", IM_END_ID)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", 151643)
    # special tokens vanish from skip_special_tokens decodes; the tool-call markers stay
    ids = [IM_START_ID, 151657, 9707, 151658, IM_END_ID]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<tool_call>Hello</tool_call>"


def test_chat_template_renders_tools_and_tool_calls(tokenizer):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_order",
                "description": "Look an order up.",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
            },
        }
    ]
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_order", "arguments": {"order_id": "#W1"}},
    }
    messages = [
        {"role": "system", "content": "You are a retail agent."},
        {"role": "user", "content": "Where is my order #W1?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "It has shipped."},
    ]
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a retail agent.\n\n# Tools\n")
    offered = text.split("XML tags:\n<tools>\n")[1].split("\n</tools>")[0]
    assert json.loads(offered) == tools[0]
    tool_call = '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "#W1"}}\n</tool_call>'
    assert f"<|im_start|>assistant\n{tool_call}<|im_end|>" in text
    assert '<|im_start|>user\n<tool_response>\n{"status": "shipped"}\n</tool_response><|im_end|>' in text
    ids = tokenizer.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=False)
    assert ids == tokenizer.encode(text, add_special_tokens=False)
    # <tool_call>: twice in the tools preamble, once in the call; one <|im_start|> per turn
    assert ids.count(151657) == 3 and ids.count(IM_START_ID) == 5


def test_model_loads_offline_and_builds_are_reused(tiny_qwen, model, tmp_path):
    assert tiny_qwen.name.startswith("tiny-qwen3-")
    config = model.config
    assert (config.model_type, config.num_hidden_layers, config.hidden_size, config.vocab_size) == (
        "qwen3",
        2,
        64,
        151936,
    )
    assert config.tie_word_embeddings and model.dtype == torch.float32
    assert model.generation_config.eos_token_id == [IM_END_ID, 151643]
    weights = tiny_qwen / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert build_tiny_qwen(tiny_qwen) == tiny_qwen and tiny_qwen_dir() == tiny_qwen
    assert weights.stat().st_mtime_ns == stamp
    (tmp_path / "half").mkdir()
    with pytest.raises(FileExistsError):
        build_tiny_qwen(tmp_path / "half")


def test_the_miniature_recipes_wider_build_is_what_its_config_declares():
    """experiment=cpu_miniature's model: the hidden-128 build, its parameter count (which the
    CPU server's size check reads) declared right."""
    from transformers import AutoModelForCausalLM

    from tau2train.config.compose import compose

    exp = compose(["experiment=cpu_miniature"]).config
    assert tiny_qwen_width(exp.actor.path) == 128 and tiny_qwen_width(tiny_qwen_path()) == 64
    wide = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir(128), dtype=torch.float32)
    assert (wide.config.hidden_size, wide.config.num_hidden_layers) == (128, 2)
    assert sum(p.numel() for p in wide.parameters()) == exp.model.num_params
    with pytest.raises(ValueError, match="hidden size 64 or 128, not 96"):
        tiny_qwen_path(96)


# -- the server --------------------------------------------------------------------------------
def test_greedy_generation_is_deterministic_with_the_models_logprobs(server, model, tokenizer):
    first = generate(server, temperature=0.0, max_new_tokens=12)
    again = generate(server, temperature=0.0, max_new_tokens=12)  # from the prefix cache
    assert again["output_ids"] == first["output_ids"]
    assert logprobs_of(again) == pytest.approx(logprobs_of(first), abs=1e-5)
    meta = first["meta_info"]
    output = first["output_ids"]
    assert [t for _, t, _ in meta["output_token_logprobs"]] == output
    assert (meta["prompt_tokens"], meta["completion_tokens"]) == (len(PROMPT), 12)
    assert meta["finish_reason"] == {"type": "length", "length": 12}
    assert first["text"] == tokenizer.decode(output)
    assert logprobs_of(first) == pytest.approx(teacher_forced(model, PROMPT, output), abs=1e-5)
    # the prompt's own log-probabilities, as AReaL's compute_logp asks for them
    scored = requests.post(
        f"{server.base_url}/generate",
        json={
            "input_ids": PROMPT,
            "sampling_params": {"max_new_tokens": 1, "temperature": 0.0},
            "return_logprob": True,
            "logprob_start_len": 0,
        },
        timeout=60,
    ).json()["meta_info"]["input_token_logprobs"]
    assert [t for _, t, _ in scored] == PROMPT and scored[0][0] is None
    expected = teacher_forced(model, PROMPT[:1], PROMPT[1:])
    assert [lp for lp, _, _ in scored[1:]] == pytest.approx(expected, abs=1e-5)


def test_sampling_follows_its_seed_and_reports_temperature_scaled_logprobs(server, model):
    params = {"temperature": 0.7, "top_p": 0.9, "top_k": 50, "max_new_tokens": 10, "sampling_seed": 7}
    first = generate(server, **params)
    assert generate(server, **params)["output_ids"] == first["output_ids"]
    assert generate(server, **params | {"sampling_seed": 8})["output_ids"] != first["output_ids"]
    output = first["output_ids"]
    # SGLang's convention: log_softmax(logits / T) of the drawn token, before top-k/top-p
    assert logprobs_of(first) == pytest.approx(teacher_forced(model, PROMPT, output, 0.7), abs=1e-5)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([PROMPT + output])).logits[0, len(PROMPT) - 1 : -1]
    top50 = torch.topk(logits, 50).indices
    assert all(token in top50[i] for i, token in enumerate(output))


def test_sampling_draws_tokens_in_proportion_to_their_probabilities():
    """The inverse-CDF sampler over the whole vocabulary (tokens in different blocks, the last
    one included), with top-p alone (the probe of the most probable tokens) and with top-k."""
    from tau2train.serving.cpu_sglang import Policy

    heads = {0: 0.3, 1500: 0.2, 70000: 0.12, 151935: 0.08}  # the rest: 0.3, spread evenly
    probs = torch.full((151936,), 0.3 / (151936 - len(heads)), dtype=torch.float64)
    for token, p in heads.items():
        probs[token] = p
    logprobs = probs.log().float()
    generator = torch.Generator().manual_seed(0)

    def frequencies(n: int, **params) -> dict[int, float]:
        draws = [Policy._sample(logprobs, SamplingParams(**params), generator) for _ in range(n)]
        return {token: draws.count(token) / n for token in heads} | {
            -1: sum(d not in heads for d in draws) / n
        }

    def close(observed: dict[int, float], expected: dict[int, float], n: int) -> bool:
        # within 4.5 standard deviations of each expected frequency
        return all(abs(observed[t] - p) <= 4.5 * (p * (1 - p) / n) ** 0.5 for t, p in expected.items())

    assert close(frequencies(3000, temperature=1.0), heads | {-1: 0.3}, 3000)
    # top-p 0.55: 0.3, 0.2, 0.12 (0.5 before it) stay, 0.08 (0.62 before it) and the rest go
    nucleus = {0: 0.3 / 0.62, 1500: 0.2 / 0.62, 70000: 0.12 / 0.62, 151935: 0.0, -1: 0.0}
    assert close(frequencies(3000, temperature=1.0, top_p=0.55), nucleus, 3000)
    assert close(frequencies(3000, temperature=1.0, top_k=2), {0: 0.6, 1500: 0.4, 70000: 0.0, -1: 0.0}, 3000)


def test_max_new_tokens_and_stop_conditions(server, tokenizer):
    greedy = generate(server, temperature=0.0, max_new_tokens=12)["output_ids"]
    short = generate(server, temperature=0.0, max_new_tokens=3)
    assert short["output_ids"] == greedy[:3]
    assert short["meta_info"]["finish_reason"] == {"type": "length", "length": 3}

    stop_id = greedy[4]
    cut = greedy.index(stop_id) + 1
    stopped = generate(server, temperature=0.0, max_new_tokens=12, stop_token_ids=[stop_id])
    assert stopped["output_ids"] == greedy[:cut]
    assert stopped["meta_info"]["finish_reason"] == {"type": "stop", "matched": stop_id}
    assert stopped["text"] == tokenizer.decode(greedy[: cut - 1])  # the stop token is left out
    ignored = generate(server, temperature=0.0, max_new_tokens=12, stop_token_ids=[stop_id], ignore_eos=True)
    assert ignored["output_ids"] == greedy

    stop_text = next(text for text in (tokenizer.decode([t]).strip() for t in greedy) if text)
    by_text = generate(server, temperature=0.0, max_new_tokens=12, stop=[stop_text])
    output = by_text["output_ids"]
    assert by_text["meta_info"]["finish_reason"] == {"type": "stop", "matched": stop_text}
    assert output == greedy[: len(output)]
    assert stop_text in tokenizer.decode(output) and stop_text not in tokenizer.decode(output[:-1])
    assert stop_text not in by_text["text"]


def test_the_prefix_cache_reuses_prompts_and_outputs_with_cold_logprobs(own_server, model, tokenizer):
    """A request repeating a prompt, or extending one with its output (a τ² episode's next
    turn), computes only what is new; its log-probabilities are those of a cold pass."""
    prompt = tokenizer.encode(" ".join(TEXTS * 3), add_special_tokens=False)
    start = len(prompt) // 2
    sampling = {"temperature": 1.0, "max_new_tokens": 16, "sampling_seed": 5, "ignore_eos": True}
    body = {
        "input_ids": prompt,
        "sampling_params": sampling,
        "return_logprob": True,
        "logprob_start_len": start,
    }

    def post() -> dict:
        return requests.post(f"{own_server.base_url}/generate", json=body, timeout=120).json()

    cold, warm = post(), post()
    assert (cold["meta_info"]["cached_tokens"], warm["meta_info"]["cached_tokens"]) == (0, start - 1)
    assert warm["output_ids"] == cold["output_ids"]  # the seed reproduces the draws
    assert logprobs_of(warm) == pytest.approx(logprobs_of(cold), abs=1e-5)
    scored = [[lp for lp, _, _ in r["meta_info"]["input_token_logprobs"]] for r in (cold, warm)]
    assert scored[1] == pytest.approx(scored[0], abs=1e-5)
    output = cold["output_ids"]
    assert logprobs_of(warm) == pytest.approx(teacher_forced(model, prompt, output), abs=1e-5)

    turn = prompt + output + PROMPT
    following = generate(own_server, turn, temperature=0.0, max_new_tokens=8)
    # everything the first request computed: its prompt and output (less the last token)
    assert following["meta_info"]["cached_tokens"] == len(prompt) + len(output) - 1
    assert logprobs_of(following) == pytest.approx(
        teacher_forced(model, turn, following["output_ids"]), abs=1e-5
    )


def test_a_weight_update_or_a_flush_empties_the_prefix_cache(own_server, perturbed, tokenizer):
    path, other = perturbed
    prompt = tokenizer.encode(" ".join(TEXTS), add_special_tokens=False)
    generate(own_server, prompt, temperature=0.0, max_new_tokens=4)
    assert generate(own_server, prompt, temperature=0.0, max_new_tokens=4)["meta_info"]["cached_tokens"] > 0

    loaded = requests.post(
        f"{own_server.base_url}/update_weights_from_disk", json={"model_path": str(path)}, timeout=120
    )
    assert loaded.json()["success"] is True
    after = generate(own_server, prompt, temperature=0.0, max_new_tokens=4)
    assert after["meta_info"]["cached_tokens"] == 0  # the old weights' keys and values are gone
    assert logprobs_of(after) == pytest.approx(teacher_forced(other, prompt, after["output_ids"]), abs=1e-5)
    again = generate(own_server, prompt, temperature=0.0, max_new_tokens=4)
    assert again["meta_info"]["cached_tokens"] > 0
    assert logprobs_of(again) == pytest.approx(logprobs_of(after), abs=1e-5)

    assert requests.post(f"{own_server.base_url}/flush_cache", timeout=60).ok
    assert generate(own_server, prompt, temperature=0.0, max_new_tokens=4)["meta_info"]["cached_tokens"] == 0


def test_requests_it_cannot_honour_are_refused(server):
    for body in (
        {"input_ids": PROMPT, "sampling_params": {"frequency_penalty": 0.5}},
        {"input_ids": [PROMPT, PROMPT]},
        {"input_ids": PROMPT, "stream": True},
        {"input_ids": []},
        {"input_ids": PROMPT, "return_logprob": True, "logprob_start_len": len(PROMPT)},
    ):
        response = requests.post(f"{server.base_url}/generate", json=body, timeout=60)
        assert response.status_code == 400, body
        assert response.json()["error"]["message"]
    # the neutral values AReaL always sends are fine
    neutral = {"frequency_penalty": 0.0, "max_new_tokens": 1, "temperature": 0.0}
    assert requests.post(
        f"{server.base_url}/generate", json={"input_ids": PROMPT, "sampling_params": neutral}, timeout=60
    ).ok


def test_forced_completions_replay_the_script_with_the_models_logprobs(server, model, tokenizer):
    text = 'Let me check. <tool_call>\n{"name": "get_order", "arguments": {"order_id": "#W1"}}\n</tool_call>'
    scripted = tokenizer.encode(text, add_special_tokens=False) + [IM_END_ID]
    ids = [9707, 1879, 0]
    queued = requests.post(
        f"{server.base_url}/tau2test/force", json={"completions": [text, ids, text]}, timeout=60
    )
    assert queued.json().items() >= {"queued": 3, "turns": 0}.items()  # and what else it holds

    first = generate(server, temperature=1.0, max_new_tokens=64)
    assert first["output_ids"] == scripted and first["text"] == text
    assert first["meta_info"]["finish_reason"] == {"type": "stop", "matched": IM_END_ID}
    assert logprobs_of(first) == pytest.approx(teacher_forced(model, PROMPT, scripted), abs=1e-5)
    second = generate(server, temperature=0.5, max_new_tokens=64)
    assert second["output_ids"] == ids
    assert logprobs_of(second) == pytest.approx(teacher_forced(model, PROMPT, ids, 0.5), abs=1e-5)
    third = generate(server, temperature=0.0, max_new_tokens=5)
    assert third["output_ids"] == scripted[:5]
    assert third["meta_info"]["finish_reason"] == {"type": "length", "length": 5}
    # the script is used up: the policy samples again
    assert generate(server, temperature=0.0, max_new_tokens=5)["output_ids"] != scripted[:5]


def test_a_turn_script_forces_each_episodes_completions_by_its_prompt(own_server, tokenizer):
    """{"turns": [call, reply]}: a prompt without the call gets the call, one holding it (the
    episode's second turn) the reply, in whatever order episodes arrive; queued ones go first."""
    call, reply = '<tool_call>\n{"name": "create_task", "arguments": {}}\n</tool_call>', "OK."
    answer = requests.post(
        f"{own_server.base_url}/tau2test/force",
        json={"completions": ["first"], "turns": [call, reply]},
        timeout=60,
    )
    assert answer.json().items() >= {"queued": 1, "turns": 2}.items()
    after_call = PROMPT + tokenizer.encode(call, add_special_tokens=False) + PROMPT

    def text(prompt):
        return generate(own_server, prompt, temperature=1.0, max_new_tokens=64)["text"]

    assert text(after_call) == "first"
    assert [text(after_call), text(PROMPT), text(after_call + after_call), text(PROMPT)] == [
        reply,
        call,
        reply,
        call,
    ]
    refused = requests.post(f"{own_server.base_url}/tau2test/force", json={"turns": [[1, 2]]}, timeout=60)
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "turns: a list of strings"


def test_update_weights_from_disk_changes_the_policy(own_server, perturbed, tmp_path):
    path, other = perturbed
    before = generate(own_server, temperature=0.0, max_new_tokens=8)
    url = f"{own_server.base_url}/update_weights_from_disk"
    failed = requests.post(url, json={"model_path": str(tmp_path / "missing")}, timeout=120)
    assert failed.status_code == 400 and failed.json()["success"] is False
    assert logprobs_of(generate(own_server, temperature=0.0, max_new_tokens=8)) == logprobs_of(before)

    loaded = requests.post(
        url, json={"model_path": str(path), "abort_all_requests": True, "weight_version": "1"}, timeout=120
    )
    assert loaded.status_code == 200 and loaded.json()["success"] is True
    after = generate(own_server, temperature=0.0, max_new_tokens=8)
    assert logprobs_of(after) != pytest.approx(logprobs_of(before), abs=1e-3)
    assert logprobs_of(after) == pytest.approx(teacher_forced(other, PROMPT, after["output_ids"]), abs=1e-5)
    info = requests.get(f"{own_server.base_url}/get_model_info", timeout=60).json()
    assert (info["model_path"], info["weight_version"]) == (str(path), "1")
    assert own_server.weight_updates == 1


class HeldGeneration:
    """The server's next generation holds after `tokens` tokens until the server aborts it
    (bounded: 60 s), so a pause lands mid-generation however fast the machine; `running` is
    set once it holds. Later generations run as they come; `calls` counts them all, and
    `arrived` the /generate requests the server has read."""

    def __init__(self, server: CPUSGLangServer, monkeypatch, tokens: int = 2):
        self.running, self.calls, self.arrived = threading.Event(), 0, 0
        generate_, parse = server.policy.generate, server._parse_generate

        def gated(*args, aborted=lambda: False, **kwargs):
            self.calls += 1
            if self.calls > 1:
                return generate_(*args, aborted=aborted, **kwargs)
            polls = 0

            def held() -> bool:  # polled before the prefill, then after each token
                nonlocal polls
                polls += 1
                if polls <= tokens:
                    return aborted()
                self.running.set()
                end = time.monotonic() + 60
                while not aborted() and time.monotonic() < end:
                    time.sleep(0.01)
                return aborted()

            return generate_(*args, aborted=held, **kwargs)

        def counted(body):
            self.arrived += 1
            return parse(body)

        monkeypatch.setattr(server.policy, "generate", gated)
        monkeypatch.setattr(server, "_parse_generate", counted)


def test_pause_aborts_the_running_request_and_holds_new_ones(own_server, model, monkeypatch):
    base = own_server.base_url
    gate = HeldGeneration(own_server, monkeypatch, tokens=2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(generate, own_server, temperature=0.0, max_new_tokens=2000)
        assert gate.running.wait(60), "the generation never got to its second token"
        assert requests.post(f"{base}/pause_generation", json={}, timeout=60).ok
        aborted = running.result(timeout=60)
        assert aborted["meta_info"]["finish_reason"] == {"type": "abort", "message": "Abort in running batch"}
        # the 2 tokens it made before the abort, real policy output
        assert len(aborted["output_ids"]) == 2
        expected = teacher_forced(model, PROMPT, aborted["output_ids"])
        assert logprobs_of(aborted) == pytest.approx(expected, abs=1e-5)

        held = pool.submit(generate, own_server, temperature=0.0, max_new_tokens=3)
        deadline = time.monotonic() + 60  # a bound on the wait for the request to arrive
        while gate.arrived < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.arrived == 2, "the second request never reached the server"
        with pytest.raises(TimeoutError):  # there, but not admitted while paused
            held.result(timeout=1.0)
        assert gate.calls == 1 and not held.done()  # no model work for it
        assert requests.post(f"{base}/continue_generation", json={}, timeout=60).ok
        assert held.result(timeout=60)["meta_info"]["finish_reason"] == {"type": "length", "length": 3}
    assert own_server.finished["abort"] == 1 and gate.calls == 2


def test_information_endpoints(server, tiny_qwen):
    base = server.base_url
    assert requests.get(f"{base}/health", timeout=60).status_code == 200
    assert requests.get(f"{base}/health_generate", timeout=60).status_code == 200
    info = requests.get(f"{base}/get_model_info", timeout=60).json()
    assert info["model_path"] == str(tiny_qwen) and info["is_generation"] is True
    server_info = requests.get(f"{base}/get_server_info", timeout=60).json()
    assert (server_info["port"], server_info["context_length"]) == (server.port, 4096)
    assert requests.get(f"{base}/v1/models", timeout=60).json()["data"][0]["id"] == str(tiny_qwen)
    assert requests.post(f"{base}/flush_cache", timeout=60).ok


# -- OpenAI's chat completions -----------------------------------------------------------------
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Look an order up.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]
MESSAGES = [
    {"role": "system", "content": "You are a retail agent."},
    {"role": "user", "content": "Where is my order #W1?"},
]
CALL = '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "#W1"}}\n</tool_call>'


def chat(server: CPUSGLangServer, **body) -> requests.Response:
    return requests.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)


def rendered(tokenizer, messages, tools=None, template=None) -> list[int]:
    """The prompt as SGLang renders it: tools as its Tool model dumps them (strict: false)."""
    if tools:
        tools = [{"type": "function", "function": tool["function"] | {"strict": False}} for tool in tools]
    return tokenizer.apply_chat_template(
        messages,
        tools=tools,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
        chat_template=template,
    )


def test_chat_completions_parse_a_forced_tool_call(server, tokenizer):
    said = f"Let me check.\n{CALL}"
    requests.post(f"{server.base_url}/tau2test/force", json={"completions": [said]}, timeout=60)
    answer = chat(server, model="any", messages=MESSAGES, tools=TOOLS, tool_choice="auto", temperature=0.0)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert (message["role"], message["content"]) == ("assistant", "Let me check.")
    (call,) = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_order"
    assert json.loads(call["function"]["arguments"]) == {"order_id": "#W1"}
    completion = len(tokenizer.encode(said, add_special_tokens=False)) + 1  # and <|im_end|>
    prompt = len(rendered(tokenizer, MESSAGES, TOOLS))
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    assert (body["object"], body["model"]) == ("chat.completion", server.served_model_name)


def test_chat_completions_answer_text_as_content_after_a_tool_round(server, tokenizer):
    """A conversation holding an earlier call (arguments as a JSON string, as OpenAI sends
    them) and its result renders as the template renders it; plain text comes back as content."""
    history = MESSAGES + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id": "#W1"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
    ]
    requests.post(f"{server.base_url}/tau2test/force", json={"completions": ["It has shipped."]}, timeout=60)
    body = chat(server, model="any", messages=history, tools=TOOLS, temperature=0.0).json()
    (choice,) = body["choices"]
    assert choice["message"]["content"] == "It has shipped." and "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    as_objects = history[:2] + [
        history[2]
        | {
            "content": "",
            "tool_calls": [{"function": {"name": "get_order", "arguments": {"order_id": "#W1"}}}],
        },
        history[3],
    ]
    assert body["usage"]["prompt_tokens"] == len(rendered(tokenizer, as_objects, TOOLS))


def test_the_openai_client_gets_the_policys_own_completion(server, tokenizer):
    import openai

    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="x", max_retries=0)
    assert [model.id for model in client.models.list().data] == [server.served_model_name]
    response = client.chat.completions.create(
        model=server.served_model_name,
        messages=MESSAGES,
        temperature=0.0,
        max_tokens=6,
        seed=3,
        logprobs=True,
    )
    (choice,) = response.choices
    assert (choice.finish_reason, response.usage.completion_tokens) == ("length", 6)
    # the same greedy completion /generate gives for the rendered prompt
    direct = generate(server, rendered(tokenizer, MESSAGES), temperature=0.0, max_new_tokens=6)
    assert choice.message.content == direct["text"] and choice.message.tool_calls is None
    assert [t.logprob for t in choice.logprobs.content] == pytest.approx(logprobs_of(direct), abs=1e-5)

    for refused in (
        {"stream": True},
        {"n": 2},
        {"tool_choice": "required", "tools": TOOLS},
        {"frequency_penalty": 1.0},
    ):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="any", messages=MESSAGES, **refused)
    assert chat(server, messages="hello").status_code == 400


def test_chat_template_and_parser_flags(tiny_qwen, tokenizer, tmp_path):
    """--chat-template replaces the tokenizer's template; --reasoning-parser splits a <think>
    block off; a parser SGLang does not know fails the server's start."""
    template = tmp_path / "plain.jinja"
    template.write_text(
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    own = CPUSGLangServer(
        tiny_qwen, chat_template=template, reasoning_parser="qwen3", served_model_name="tiny"
    )
    own.start()
    try:
        own.force(["<think>\nThe order is #W1.\n</think>\n\nIt has shipped."], [])
        body = chat(own, model="tiny", messages=MESSAGES).json()
        message = body["choices"][0]["message"]
        # SGLang's qwen3 reasoning parser: the block's text (less its first newline), then the rest
        assert (message["reasoning_content"], message["content"]) == (
            "The order is #W1.\n",
            "It has shipped.",
        )
        assert body["usage"]["prompt_tokens"] == len(
            rendered(tokenizer, MESSAGES, template=template.read_text())
        )
    finally:
        own.stop()
    with pytest.raises(ValueError, match="--tool-call-parser 'nope'"):
        CPUSGLangServer(tiny_qwen, tool_call_parser="nope")


# -- AReaL's own client ------------------------------------------------------------------------
class LoopThread:
    """An event loop on a thread of its own, as AReaL's rollout runner keeps one: agenerate calls
    share its aiohttp session, and the test thread stays free for AReaL's blocking calls."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        from areal.infra import workflow_context

        async def close_session():
            await (await workflow_context.get_aiohttp_session()).close()

        self.submit(close_session()).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)
        self.loop.close()


def test_areals_sglang_client_generates_scores_pauses_and_updates_weights(
    own_server, model, tokenizer, perturbed, monkeypatch
):
    from areal.api.cli_args import GenerationHyperparameters, InferenceEngineConfig
    from areal.api.io_struct import ModelRequest, WeightUpdateMeta
    from areal.engine.sglang_remote import RemoteSGLangEngine
    from areal.utils import name_resolve, names

    config = InferenceEngineConfig(
        experiment_name="cpu-sglang",
        trial_name="test",
        backend="sglang:d1",
        setup_timeout=60,
        request_timeout=120,
        request_retries=1,
        pause_grace_period=0.0,
    )
    engine = RemoteSGLangEngine(config)
    engine.initialize(addr=own_server.address)
    runner = LoopThread()

    def agenerate(**gconfig):
        request = ModelRequest(
            input_ids=list(PROMPT), gconfig=GenerationHyperparameters(**gconfig), tokenizer=tokenizer
        )
        return runner.submit(engine.agenerate(request))

    try:
        greedy = agenerate(greedy=True, max_new_tokens=8).result(120)
        direct = generate(own_server, temperature=0.0, max_new_tokens=8)
        assert greedy.input_tokens == PROMPT and greedy.stop_reason == "length"
        assert greedy.output_tokens == direct["output_ids"]
        assert greedy.output_logprobs == pytest.approx(logprobs_of(direct), abs=1e-5)
        assert greedy.output_versions == [0] * 8

        text = '<tool_call>\n{"name": "get_order", "arguments": {"order_id": "#W1"}}\n</tool_call>'
        requests.post(f"{own_server.base_url}/tau2test/force", json={"completions": [text]}, timeout=60)
        forced = agenerate(temperature=1.0, max_new_tokens=64).result(120)
        scripted = tokenizer.encode(text, add_special_tokens=False) + [IM_END_ID]
        assert (forced.output_tokens, forced.stop_reason) == (scripted, "stop")
        assert forced.output_logprobs == pytest.approx(teacher_forced(model, PROMPT, scripted), abs=1e-5)

        # compute_logp: AReaL's scoring request (input_token_logprobs from logprob_start_len)
        sequence = torch.tensor([PROMPT + scripted])
        loss_mask = torch.tensor([[0] * len(PROMPT) + [1] * len(scripted)])
        (scores,) = engine.compute_logp([{"input_ids": sequence, "loss_mask": loss_mask}])
        assert scores[0, len(PROMPT) :].tolist() == pytest.approx(forced.output_logprobs, abs=1e-5)
        assert scores[0, : len(PROMPT)].abs().sum() == 0

        # interrupted mid-generation by AReaL's pause (the generation holds after 2 tokens
        # until it comes), resumed by its agenerate loop
        gate = HeldGeneration(own_server, monkeypatch, tokens=2)
        long = agenerate(greedy=True, max_new_tokens=150)
        assert gate.running.wait(60), "the generation never got to its second token"
        engine.pause_generation()
        engine.continue_generation()
        resumed = long.result(120)
        assert own_server.finished["abort"] == 1 and gate.calls == 2  # aborted once, resubmitted once
        assert (len(resumed.output_tokens), resumed.stop_reason) == (150, "length")
        expected = teacher_forced(model, PROMPT, resumed.output_tokens)
        assert resumed.output_logprobs == pytest.approx(expected, abs=1e-5)

        # a weight update from disk, published as AReaL's training engine does (name_resolve)
        path, other = perturbed
        repository = name_resolve.MemoryNameRecordRepository()
        monkeypatch.setattr(name_resolve, "add", repository.add)
        monkeypatch.setattr(name_resolve, "wait", repository.wait)
        key = names.update_weights_from_disk(config.experiment_name, config.trial_name, engine.get_version())
        name_resolve.add(key, str(time.time()))
        meta = WeightUpdateMeta(type="disk", path=str(path), clear_checkpoint_after_load=False)
        engine.update_weights_from_disk(meta).result(120)
        engine.set_version(1)
        updated = agenerate(greedy=True, max_new_tokens=8).result(120)
        assert own_server.weight_updates == 1 and updated.output_versions == [1] * 8
        assert updated.output_logprobs == pytest.approx(
            teacher_forced(other, PROMPT, updated.output_tokens), abs=1e-5
        )

        engine.offload()  # AReaL's offload/onload requests: no-ops on CPU
        engine.onload()
    finally:
        runner.close()
        engine.destroy()


# -- as a process --------------------------------------------------------------------------------
def serving_url(process: subprocess.Popen, timeout: float) -> str:
    """The URL the server prints once it listens; its other output is drained meanwhile."""
    found: queue.Queue[str | None] = queue.Queue()

    def read():
        for line in process.stdout:
            if line.startswith("serving on "):
                found.put(line.split()[-1])
        found.put(None)  # it exited

    threading.Thread(target=read, daemon=True).start()
    url = found.get(timeout=timeout)
    assert url is not None, f"the server exited with {process.wait()}"
    return url


@pytest.mark.slow
def test_runs_as_a_process_taking_areals_sglang_flags(tiny_qwen, tokenizer):
    from areal.api.cli_args import SGLangConfig, conf_as_dict, get_py_cmd

    # the flags AReaL's SGLangConfig.build_args renders for sglang.launch_server
    args = conf_as_dict(SGLangConfig(model_path=str(tiny_qwen), context_length=2048, random_seed=3))
    args |= {"tokenizer_path": str(tiny_qwen), "tp_size": 1, "base_gpu_id": 0, "trust_remote_code": True}
    args |= {"host": "127.0.0.1", "port": 0}
    command = [sys.executable, *get_py_cmd("tau2train.serving.cpu_sglang", args)[1:]]
    assert "--mem-fraction-static" in command and "--dtype" in command
    # and the flags of an evaluation's server (tau2train.config.servers.server_command)
    template = TESTS_DIR.parent / "tau2train" / "chat_templates" / "qwen_nonthinking.jinja"
    command += [
        "--tool-call-parser",
        "qwen25",
        "--reasoning-parser",
        "qwen3",
        "--chat-template",
        str(template),
    ]
    command += ["--served-model-name", "tiny", "--tp", "1", "--dp", "1", "--torch-threads", "1"]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
    }
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = serving_url(process, timeout=300)
        info = requests.get(f"{url}/get_server_info", timeout=60).json()
        assert (info["context_length"], info["random_seed"]) == (2048, 3)
        body = {
            "input_ids": PROMPT,
            "sampling_params": {"temperature": 0.0, "max_new_tokens": 4},
            "return_logprob": True,
        }
        result = requests.post(f"{url}/generate", json=body, timeout=120).json()
        assert result["meta_info"]["completion_tokens"] == 4
        answer = requests.post(
            f"{url}/v1/chat/completions",
            json={"model": "tiny", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 4},
            timeout=120,
        ).json()
        assert answer["model"] == "tiny" and answer["usage"]["completion_tokens"] == 4
        expected = rendered(tokenizer, MESSAGES, TOOLS, template=template.read_text())
        assert answer["usage"]["prompt_tokens"] == len(expected)
    finally:
        process.terminate()
        assert process.wait(60) == 0
