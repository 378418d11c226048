"""One run of the loop: everything fixed for it, checked before any compute (`experiment`),
the generation loop with its resuming (`loop`), and the Orbax checkpoints (`checkpoint`)."""
