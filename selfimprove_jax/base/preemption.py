"""Stopping cleanly on SIGTERM: what TPU VM maintenance events and spot GPUs send first.

While `watch()` is active, SIGTERM only sets a flag. The loop looks at it at
safe points: after each training step it saves a progress checkpoint at that
step and stops; between sampler calls and between stages it stops at once
(the work since the last checkpoint is redone, drawing what it drew before).
Either way the run raises `Preempted`, which the command line turns into exit
status 0, and re-running the command resumes.

With several processes, each host may hear the signal at a different step, so
they agree through JAX's distributed runtime
(`multihost_utils.reached_preemption_sync_point`), which every host reaches at
the same step.
"""

import contextlib
import logging
import signal
import threading

import jax

_requested = threading.Event()


class Preempted(Exception):
  """The run stopped on SIGTERM after saving what it had; rerun to resume."""


def _on_sigterm(signum, frame):
  del signum, frame
  if not _requested.is_set():
    logging.warning("SIGTERM: stopping at the next safe point (after this step)")
  _requested.set()


@contextlib.contextmanager
def watch():
  """SIGTERM sets the flag instead of killing the process, for the duration.

  With several processes JAX's distributed runtime hears SIGTERM itself and
  `requested(step)` asks it instead; only the main thread can hold a handler.
  """
  if jax.process_count() > 1 or threading.current_thread() is not threading.main_thread():
    yield
    return
  _requested.clear()
  previous = signal.signal(signal.SIGTERM, _on_sigterm)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def requested(step_id: int) -> bool:
  """Stop after this training step? `step_id` grows through the run; all processes agree."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return multihost_utils.reached_preemption_sync_point(step_id)
  return _requested.is_set()


def stop_if_requested(where: str) -> None:
  """At a point with nothing new to save: stop now if asked to (one process only;
  several processes stop together at a training step)."""
  if _requested.is_set():
    raise Preempted(f"stopped on SIGTERM {where}; rerun the same command to resume")
