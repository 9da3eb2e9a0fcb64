"""Configuration: compose an experiment from the Hydra config groups onto the schemas, check it
before anything starts, and explain every mistake as one ConfigError.

Imports tau2train.schemas and tau2train.records only; never launch code (tests/test_layout.py).
"""
