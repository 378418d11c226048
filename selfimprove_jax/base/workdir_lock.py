"""One run per workdir: an OS lock that the run holds for its whole life.

`acquire(workdir)` takes an exclusive `flock` on `<workdir>/run.lock` and writes
the holder (pid, host, start time) into it. The kernel drops the lock when the
holding process ends, however it ends, SIGKILL included: a crashed run never
leaves a stale lock behind, only the file naming its last holder, and the next
run takes the lock again. A second run on a held workdir stops at once with
`Busy`, one line naming the workdir and the holder, having written nothing.

With several processes, process 0 holds the lock for the run (experiment.build).
"""

import errno
import fcntl
import logging
import os
import socket
import time
from pathlib import Path

from selfimprove_jax.base.errors import UserError

FILENAME = "run.lock"


class Busy(UserError):
  """Another live process holds the workdir."""


class WorkdirLock:
  """A held lock; `release()` (or the process's end) lets the next run in."""

  def __init__(self, fd: int):
    self._fd: int | None = fd

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # closing the only descriptor drops the flock
      self._fd = None


def acquire(workdir: Path) -> WorkdirLock:
  """Locks an existing workdir for this process, or raises Busy naming the holder."""
  path = Path(workdir) / FILENAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      # A filesystem without locks (some network mounts): run, but say so.
      logging.warning("%s cannot be locked (%s): nothing stops a second run on this workdir",
                      path, e.strerror)
      return WorkdirLock(fd)
    holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "not yet named"
    os.close(fd)
    raise Busy(f"--workdir {workdir} is in use by another run ({holder}); wait for it to end "
               "or stop it, or use another --workdir") from None
  stamp = time.strftime("%Y-%m-%d %H:%M:%S")
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since {stamp}\n".encode(), 0)
  return WorkdirLock(fd)
