"""The CPU inference server's generation (tau2train/serving/cpu_sglang.py) on a τ²-like
workload: inverse-CDF sampling and the prefix cache against the old multinomial sampler
without a cache, measured in the same run.

    python benchmarks/cpu_server.py [--model-path DIR | --wider 8x512] [--turns 6] [--new-tokens 48]
                                    [--rounds 2] [--threads N]

The workload is two episodes sharing one ~700-token prefix (a system prompt and six tools,
rendered by the model's chat template), each growing turn by turn (a tool call, its result, a
user reply): one episode sampled at temperature 1, the other greedy, `--new-tokens` tokens a
request (ignore_eos, so every configuration does the same work). The prompts are fixed in
advance, so each configuration serves exactly the same requests:

* baseline: torch.multinomial over the whole vocabulary, no prefix cache (the server before);
* sampler:  inverse-CDF sampling, no prefix cache;
* new:      inverse-CDF sampling and the prefix cache (the server now).

Each configuration runs `--rounds` times, interleaved; the best round counts. Printed: seconds
per configuration and temperature, the ratios baseline / sampler and baseline / new, and a
check that the cached path's greedy outputs and log-probabilities match the uncached ones.
Defaults: the tiny Qwen3 (tau2train.serving.tiny_qwen), whose prefill is nearly free (hidden 64:
its time goes to the 152k x 64 output layer, token by token), so it shows the sampler; `--wider
8x512` builds a random Qwen3 of 8 layers x 512 (same tokenizer) whose prefill costs like a
small checkpoint's, to show the prefix cache. On cores shared with other busy processes,
`--threads 1` (as the server's --torch-threads 1) removes most of the noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from tau2train.serving.cpu_sglang import Generation, Policy, SamplingParams

SYSTEM = (
    "You are a customer service agent for an airline. Help the user with reservations: "
    "booking, changing flights, cancelling, baggage and insurance. Before any action that "
    "updates the booking database, list the action's details and obtain explicit user "
    "confirmation (yes) to proceed. Make one tool call at a time; if you make a tool call, "
    "do not respond to the user at the same time. Deny requests that are against policy. "
) * 2
TOOL_NAMES = (
    "get_user_details",
    "get_reservation_details",
    "search_direct_flight",
    "update_reservation_flights",
    "cancel_reservation",
    "transfer_to_human_agents",
)


@dataclass(frozen=True)
class Request:
    """One request of the workload: its prompt and how it is sampled."""

    prompt: list[int]
    temperature: float


class BaselinePolicy(Policy):
    """The server's generation before: torch.multinomial over the (truncated) distribution."""

    @staticmethod
    def _draw(weights: torch.Tensor, generator: torch.Generator) -> int:
        return int(torch.multinomial(weights, 1, generator=generator))


def tools() -> list[dict]:
    """Six τ²-airline-like tools, two string parameters each."""
    parameters = ("user_id", "reservation_id", "origin", "destination", "date", "cabin")
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": f"{name.replace('_', ' ').capitalize()} for the user's booking.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        p: {"type": "string", "description": f"The {p.replace('_', ' ')}."}
                        for p in ("user_id", parameters[i])
                    },
                    "required": ["user_id"],
                },
            },
        }
        for i, name in enumerate(TOOL_NAMES)
    ]


def episode(tokenizer, turns: int, temperature: float, seed: int) -> list[Request]:
    """An episode's requests: each prompt is the conversation so far, grown by a tool call,
    its result and a user reply per turn."""
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Hi, I am user_{seed}. I want to change my flight."},
    ]
    requests = []
    for turn in range(turns):
        prompt = tokenizer.apply_chat_template(
            messages, tools=tools(), add_generation_prompt=True, tokenize=True, return_dict=False
        )
        requests.append(Request(list(prompt), temperature))
        call = {"name": TOOL_NAMES[turn % len(TOOL_NAMES)], "arguments": {"user_id": f"user_{seed}"}}
        messages += [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": f"c{turn}", "type": "function", "function": call}],
            },
            {
                "role": "tool",
                "tool_call_id": f"c{turn}",
                "content": f'{{"reservation_id": "R{seed}{turn}", "flights": ["HAT{100 + turn}"], "cabin": "economy"}}',
            },
            {"role": "user", "content": f"Thanks. Could you also check the flight on May {turn + 10}?"},
        ]
    return requests


def wider_qwen(layers: int, hidden: int, folder: Path) -> str:
    """A random Qwen3 of `layers` x `hidden` (64-wide heads, MLP 3x) with the tiny Qwen's
    tokenizer, saved in `folder`: prefill costs like a small real checkpoint's, no download."""
    from transformers import AutoTokenizer, GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from tau2train.serving.tiny_qwen import tiny_qwen_dir

    tiny = tiny_qwen_dir()
    shape = {
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "intermediate_size": 3 * hidden,
        "num_attention_heads": hidden // 64,
        "num_key_value_heads": max(1, hidden // 256),
        "head_dim": 64,
    }
    settings = {k: v for k, v in Qwen3Config.from_pretrained(tiny).to_dict().items() if k != "layer_types"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen3ForCausalLM(Qwen3Config(**settings | shape)).eval()
    model.generation_config = GenerationConfig.from_pretrained(tiny)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    return str(folder)


def serve(policy: Policy, request: Request, index: int, new_tokens: int) -> tuple[float, Generation]:
    """Seconds the request took, and its generation."""
    params = SamplingParams(
        temperature=request.temperature, max_new_tokens=new_tokens, ignore_eos=True, sampling_seed=index
    )
    start = time.perf_counter()
    generation = policy.generate(request.prompt, params, logprob_start_len=len(request.prompt) - 1)
    return time.perf_counter() - start, generation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own)")
    parser.add_argument("--wider", metavar="LAYERSxHIDDEN", help="a random Qwen3 of this shape, e.g. 8x512")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        if args.wider:
            layers, hidden = (int(n) for n in args.wider.split("x"))
            args.model_path = wider_qwen(layers, hidden, Path(folder))
        elif args.model_path is None:
            from tau2train.serving.tiny_qwen import tiny_qwen_dir

            args.model_path = str(tiny_qwen_dir())
        run(args)


def run(args: argparse.Namespace) -> None:
    """The workload on each configuration, and the report."""
    path = args.model_path
    configurations = {
        "baseline": BaselinePolicy(path, path, 1, None, prefix_cache_entries=0),
        "sampler": Policy(path, path, 1, None, prefix_cache_entries=0),
        "new": Policy(path, path, 1, None),
    }
    tokenizer = configurations["new"].tokenizer
    workload = episode(tokenizer, args.turns, 1.0, 1) + episode(tokenizer, args.turns, 0.0, 2)
    lengths = [len(r.prompt) for r in workload]
    print(
        f"{path}: {len(workload)} requests, prompts {min(lengths)}-{max(lengths)} tokens, "
        f"{args.new_tokens} new tokens each, torch threads {torch.get_num_threads()}"
    )
    # The configurations take turns request by request (so a busy machine slows them alike);
    # each request's best round counts.
    best = {name: [float("inf")] * len(workload) for name in configurations}
    outputs: dict[str, list[Generation]] = {name: [] for name in configurations}
    for _ in range(args.rounds):
        for policy in configurations.values():
            policy.prefixes.clear()  # every round starts cold
        for name in outputs:
            outputs[name] = []
        for i, request in enumerate(workload):
            for name, policy in configurations.items():
                seconds, generation = serve(policy, request, i, args.new_tokens)
                best[name][i] = min(best[name][i], seconds)
                outputs[name].append(generation)
    report(workload, best)
    check(workload, outputs["sampler"], outputs["new"])


def report(workload: list[Request], best: dict[str, list[float]]) -> None:
    """Seconds per configuration and temperature, and the ratios to the baseline."""
    totals = {
        name: {t: sum(s for s, r in zip(times, workload) if r.temperature == t) for t in (1.0, 0.0)}
        for name, times in best.items()
    }
    for name, seconds in totals.items():
        print(
            f"  {name:9s} T=1 {seconds[1.0]:7.2f} s   T=0 {seconds[0.0]:7.2f} s   "
            f"total {sum(seconds.values()):7.2f} s"
        )
    base = totals["baseline"]
    for name in ("sampler", "new"):
        ratios = {t: base[t] / totals[name][t] for t in base}
        total = sum(base.values()) / sum(totals[name].values())
        print(
            f"  baseline / {name:7s}: T=1 {ratios[1.0]:5.2f}x   T=0 {ratios[0.0]:5.2f}x   total {total:5.2f}x"
        )


def check(workload: list[Request], cold: list[Generation], warm: list[Generation]) -> None:
    """The cached path's greedy outputs and every log-probability against the uncached ones."""
    greedy = [i for i, r in enumerate(workload) if r.temperature == 0.0]
    same = all(cold[i].output_ids == warm[i].output_ids for i in greedy)
    pairs = [(a, b) for i in greedy for a, b in zip(cold[i].output_logprobs, warm[i].output_logprobs)]
    pairs += [
        (a, b)
        for c, w in zip(cold, warm)
        for a, b in zip(c.input_logprobs, w.input_logprobs)
        if a is not None
    ]
    drift = max(abs(a - b) for a, b in pairs)
    reused = sum(g.cached_tokens for g in warm) / sum(len(r.prompt) for r in workload)
    print(
        f"  prefix cache: {reused:.0%} of prompt tokens reused; greedy outputs identical: {same}; "
        f"largest log-probability difference {drift:.1e}"
    )


if __name__ == "__main__":
    main()
