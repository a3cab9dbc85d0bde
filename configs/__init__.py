"""Experiment configs: `configs/NAME.py` defines `get_config(arg)` (ml_collections).

`arg` is a variant name optionally followed by comma-separated options, e.g.
`configs/gan.py:digits,smoke` (the `smoke` option shrinks a config to a seconds-long run
with the same code paths; tests and CI use it)."""
