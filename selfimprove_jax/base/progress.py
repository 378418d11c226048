"""Progress bars that suit where the output goes.

On a terminal: tqdm's bar, redrawn in place and cleared when done. Anywhere
else (a log file fetched from a TPU VM, nohup, CI) a bar redrawn with carriage
returns turns a log into megabytes of one line, so there the bar writes one
plain line per `LOG_INTERVAL` seconds, and its last state when done.
"""

import sys

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between a bar's lines when the output is not a terminal


class _Lines:
  """A stream for tqdm that turns each redraw into one line (and a clearing into none)."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, text: str) -> None:
    text = text.replace("\r", "").strip()
    if text:
      self.stream.write(text + "\n")

  def flush(self) -> None:
    self.stream.flush()


def bar(iterable=None, *, stream=None, **kwargs) -> tqdm:
  """tqdm(iterable, **kwargs) writing to `stream` (default stderr), as described above."""
  stream = sys.stderr if stream is None else stream
  if stream.isatty():
    return tqdm(iterable, file=stream, leave=False, **kwargs)
  # maxinterval too: tqdm's monitor thread would otherwise redraw a slow bar every 10 s.
  return tqdm(iterable, file=_Lines(stream), leave=True, ascii=True,
              **{"mininterval": LOG_INTERVAL, "maxinterval": LOG_INTERVAL, **kwargs})
