"""RunInfo: one episode's record, readable as text and as JSON."""

from __future__ import annotations

import json

from tau2train.schemas import RunInfo


def test_run_info_renders_what_a_person_debugging_an_episode_needs():
    info = RunInfo(
        task_id="airline_7",
        reward=1.0,
        agent_latencies=[0.5, 1.5],
        user_latencies=[0.25],
        messages=[
            {"role": "user", "content": "Cancel my booking ABC123"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"name": "cancel_reservation", "arguments": {"reservation_id": "ABC123"}}]},
        ],
        reward_info={"DB": 1.0},
        error=None,
    )
    text = str(info)
    assert "Task: airline_7" in text
    assert "Reward: 1.0" in text
    assert "Agent latency: 2 calls, mean 1.00s, max 1.50s" in text
    assert "User latency: 1 calls, mean 0.25s, max 0.25s" in text
    assert "[0] user: Cancel my booking ABC123" in text
    assert '-> cancel_reservation({"reservation_id": "ABC123"})' in text
    assert "Error" not in text
    assert json.loads(info.to_json())["reward_info"] == {"DB": 1.0}


def test_run_info_shows_the_error_of_a_failed_episode():
    text = str(RunInfo(task_id="retail_3", error="user simulator unreachable"))
    assert "Error: user simulator unreachable" in text
    assert "Agent latency: n/a" in text
