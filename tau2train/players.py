"""tau2's own agent and user-simulator classes, talking through `Chat` instead of litellm.

tau2's LLMAgent, LLMSoloAgent and UserSimulator call the module-level `generate(model=...)`
of their modules. Passing a `Chat` as their `llm` and routing that one case to it keeps all
of tau2's turn logic (solo stop tool, role flipping, user tool calls) exactly as tau2 wrote
it; every other model name still goes to tau2's litellm path unchanged.
"""

from __future__ import annotations

from tau2.agent import llm_agent
from tau2.agent.llm_agent import LLMAgent, LLMSoloAgent
from tau2.data_model.tasks import Task
from tau2.environment.environment import Environment
from tau2.environment.tool import as_tool
from tau2.user import user_simulator
from tau2.user.user_simulator import DummyUser, UserSimulator

from tau2train.chat import Chat

_tau2_generate = llm_agent.generate


def _generate(model, messages, tools=None, tool_choice=None, **kwargs):
    if isinstance(model, Chat):
        return model(messages, tools, tool_choice)
    return _tau2_generate(model=model, messages=messages, tools=tools, tool_choice=tool_choice, **kwargs)


# The two names tau2's player classes resolve `generate` through (tau2.agent.llm_agent and
# tau2.user.user_simulator import it from tau2.utils.llm_utils).
llm_agent.generate = _generate
user_simulator.generate = _generate


def think(thought: str) -> str:
    """Use this tool to think. It neither fetches information nor changes anything; the
    thought is kept in the conversation. Use it only when careful reasoning is needed.

    Args:
        thought: What you are thinking.
    """
    return ""


THINK_TOOL = as_tool(think)


def make_players(
    task: Task,
    env: Environment,
    agent_chat: Chat,
    user_chat: Chat | None,
    solo_mode: bool,
    add_thinking_tool: bool,
):
    """The agent (the policy) and the user for one episode, as tau2 builds them."""
    tools = env.get_tools()
    try:
        user_tools = env.get_user_tools()
    except Exception:  # domains without user tools raise here
        user_tools = []
    if add_thinking_tool:
        tools.append(THINK_TOOL)
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
