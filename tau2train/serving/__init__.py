"""Serving small models on CPU: the tiny Qwen3 built locally (`tiny_qwen`), the inference server
speaking SGLang's HTTP protocol (`cpu_sglang`), and AReaL's worker that starts it in place of
SGLang (`rollout_worker`). The backend of allocation=cpu_* and of the miniature recipe."""
