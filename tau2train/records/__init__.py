"""Run records: the files a run leaves behind and everything that names them (run-directory
layout, job records, the user-sim server record, atomic writes). Standard library only, so
any process can read them cheaply (tests/test_layout.py)."""
