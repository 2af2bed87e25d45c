"""The search benchmark on a declared task suite, with real peers (Optuna, torch-lr-finder).

.venv/bin/python -m benchmarks.suite --set tuning [--jobs 2]
"""
