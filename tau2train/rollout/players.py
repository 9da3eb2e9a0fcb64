"""tau2's own agent and user-simulator classes, talking through `Chat` instead of litellm.

tau2's LLMAgent, LLMSoloAgent and UserSimulator call the module-level `generate(model=...)`
of their modules. Passing a `Chat` as their `llm` and routing that one case to it keeps all
of tau2's turn logic (solo stop tool, role flipping, user tool calls) exactly as tau2 wrote
it; every other model name still goes to tau2's litellm path unchanged.
"""

from __future__ import annotations

from functools import lru_cache

from tau2.agent import llm_agent
from tau2.agent.llm_agent import LLMAgent, LLMSoloAgent
from tau2.data_model.tasks import Task
from tau2.environment.environment import Environment
from tau2.environment.tool import Tool, as_tool
from tau2.registry import registry
from tau2.user.user_simulator import DummyUser, UserSimulator

from tau2train.compat.tau2 import generates, set_generate
from tau2train.rollout.chat import Chat, openai_schema

_tau2_generate = llm_agent.generate  # tau2.utils.llm_utils.generate, as both player modules import it


def _generate(model, messages, tools=None, tool_choice=None, **kwargs):
    if isinstance(model, Chat):
        return model(messages, tools, tool_choice)
    return _tau2_generate(model=model, messages=messages, tools=tools, tool_choice=tool_choice, **kwargs)


def route_chats() -> None:
    """Point the player modules' `generate` at `_generate` (idempotent; tau2train.compat.tau2):
    done when players are made, not at import, and undone by `unroute_chats`
    (tau2train.launch.process_state, on a run's way out)."""
    set_generate(_generate)


def unroute_chats() -> None:
    set_generate(_tau2_generate)


def chats_routed() -> bool:
    return all(generate is _generate for generate in generates())


def think(thought: str) -> str:
    """Use this tool to think. It neither fetches information nor changes anything; the
    thought is kept in the conversation. Use it only when careful reasoning is needed.

    Args:
        thought: What you are thinking.
    """
    return ""


THINK_TOOL = as_tool(think)


@lru_cache(maxsize=None)
def _offered_tools(domain: str, solo_mode: bool) -> tuple[tuple[Tool, ...], tuple[Tool, ...]]:
    """The agent's and the user's tools of `domain`, built once per process.

    Players only show tools to the LLM (name, description, JSON schema); calls are executed
    by the episode's own environment. tau2 builds Tool objects with pydantic models for every
    environment (~20 ms an episode), so one template environment's tools serve every episode.
    """
    env = registry.get_env_constructor(domain)(solo_mode=solo_mode)
    try:
        user_tools = tuple(env.get_user_tools())
    except Exception:  # domains without user tools raise here
        user_tools = ()
    return tuple(env.get_tools()), user_tools


def forget_tools() -> None:
    """Forget the tools built so far (the process now plays another task set: rollout.tau2_data_dir)."""
    _offered_tools.cache_clear()

def agent_tool_schemas(domain: str) -> list[dict]:
    """The agent's tools of `domain` in OpenAI's function schema, as episodes offer them
    (what a chat template's `tools=` takes)."""
    return [openai_schema(tool) for tool in _offered_tools(domain, False)[0]]

def make_players(
    task: Task,
    domain: str,
    env: Environment,
    agent_chat: Chat,
    user_chat: Chat | None,
    solo_mode: bool,
    add_thinking_tool: bool,
):
    """The agent (the policy) and the user for one episode, as tau2 builds them."""
    route_chats()
    agent_tools, user_tools = _offered_tools(domain, solo_mode)
    tools = list(agent_tools) + ([THINK_TOOL] if add_thinking_tool else [])
    user_tools = list(user_tools)
    if solo_mode:
        agent = LLMSoloAgent(
            tools=tools + user_tools, domain_policy=env.get_policy(), task=task, llm=agent_chat
        )
        return agent, DummyUser()
    agent = LLMAgent(tools=tools, domain_policy=env.get_policy(), llm=agent_chat)
    user = UserSimulator(
        tools=user_tools or None,
        instructions=str(task.user_scenario),
        llm=user_chat,
    )
    return agent, user
