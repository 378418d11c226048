"""selfimprove_jax: recursive self-improvement with synthetic data, in JAX.

The folders, from the top down (each module imports only from the ones below it):
run/ (a run and its generation loop), grading/ (task mode) and text/ (text mode),
core/ (the model and what runs on the devices), base/ (errors, files, signals).
The commands sit at this level: main, bench, compare, compare_scorers, feedback.
"""
