"""Benchmarks of the bot served the production way; run `python bench/run.py` (see its --help)."""
