"""Reports read from run records: the sweep report and the terminal tables it shares with the
plan. Imports records and the standard library (matplotlib only for its PNG)."""
