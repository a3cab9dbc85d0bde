"""artjax's benchmarks, a package: `python -m benchmarks.NAME ...` (or `python
benchmarks/NAME.py ...`). Set-up goes through the same config parser and run building as
run.py (`benchmarks.common`); the PyTorch peers measured side by side live in `peers/`."""
