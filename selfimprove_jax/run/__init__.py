"""One run of the loop: every config field checked before any compute (`config_check`),
the run's devices, workdir and mode put together (`experiment`), the generation loop with
its resuming (`loop`), the training steps within a generation (`training`), the workdir's
files (`workdir`) and its Orbax checkpoints (`checkpoint`)."""
