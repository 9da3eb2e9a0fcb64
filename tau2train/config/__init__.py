"""Configuration: compose an experiment from the Hydra config groups onto the schemas, check it
before anything starts, and explain every mistake as one ConfigError.

Imports tau2train.schemas, records, compat and serving (where the tiny Qwen3 is built) only;
never launch code (tests/test_layout.py).
"""
