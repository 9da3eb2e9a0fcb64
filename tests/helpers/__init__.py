"""What the tests share: the scripted OpenAI-compatible server (scripted_llm), the recording
trainer stand-in (recording_trainer) and the ways a test runs tau2train as a user would (cli).
Importable as `helpers.*` with tests/ on the path (pytest puts it there; subprocesses get it
through PYTHONPATH)."""
