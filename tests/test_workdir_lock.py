"""One workdir, one run: a second run on a held workdir stops with one line and writes
nothing; the lock dies with its holder, SIGKILL included."""

import os
import signal
import socket

import pytest

import crash_harness as harness
from selfimprove_jax.base import workdir_lock
from selfimprove_jax.run import experiment


def snapshot(workdir):
  """Every file under the workdir with its bytes: what 'writes nothing' compares."""
  return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*"))
          if p.is_file()}


def finish(process, timeout=600) -> tuple[int, str]:
  _, err = process.communicate(timeout=timeout)
  return process.returncode, err


def test_a_second_run_stops_naming_the_holder_and_the_lock_dies_with_it(crash_reference):
  # Beside the crash tests' reference run, so that its compiled programs are reused.
  workdir = crash_reference[0].parent / "locked"
  holder = harness.launch(workdir, "hold-train:0:5", talk=True)
  try:
    for line in holder.stdout:  # TFDS speaks first, on stdout too
      if line.strip() == "holding":
        break
    else:
      raise AssertionError(finish(holder)[1][-3000:])
    before = snapshot(workdir)
    for flags in ((), ("--start_over",)):  # nor may --start_over move a live run's workdir
      code, err = finish(harness.launch(workdir, flags=flags))
      assert code == 1, err[-3000:]
      last = err.strip().splitlines()[-1]
      assert last == (f"error: --workdir {workdir} is in use by another run (pid {holder.pid} "
                      f"on host {socket.gethostname()}, since {last.split('since ')[1]}")
      assert snapshot(workdir) == before  # nothing written, nothing moved
    assert not list(workdir.parent.glob("locked.replaced-*"))
  finally:
    holder.send_signal(signal.SIGKILL)  # no clean-up runs: only the kernel drops the lock
    holder.communicate()
  # Nothing stale is left: the lock is free for the next run (that a run killed mid-way
  # resumes to the same result is the crash tests' part).
  workdir_lock.acquire(workdir).release()


def test_the_lock_is_exclusive_until_released_and_names_its_holder(tmp_path):
  first = workdir_lock.acquire(tmp_path)
  with pytest.raises(workdir_lock.Busy, match=rf"^--workdir {tmp_path} is in use by another run "
                     rf"\(pid {os.getpid()} on host .+, since .+\); wait for it to end"):
    workdir_lock.acquire(tmp_path)
  with pytest.raises(workdir_lock.Busy):  # --start_over is refused too, and moves nothing
    experiment.set_aside_workdir(tmp_path)
  assert tmp_path.exists()
  first.release()
  workdir_lock.acquire(tmp_path).release()
