"""One run of the loop: every config field checked before any compute (`config_check`),
everything fixed for the run (`experiment`), the generation loop with its resuming
(`loop`), and the Orbax checkpoints (`checkpoint`)."""
