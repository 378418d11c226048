"""Progress bars: redrawn in place on a terminal, whole lines in a log."""

import io

from selfimprove_jax.base import progress


class Terminal(io.StringIO):
  def isatty(self):
    return True


def test_a_log_gets_whole_lines_and_no_carriage_returns():
  log = io.StringIO()
  for _ in progress.bar(range(1000), stream=log, desc="gen 1 train"):
    pass
  text = log.getvalue()
  assert "\r" not in text and text.endswith("\n")
  # A thousand steps inside one interval: the first state and the last, nothing between.
  lines = text.splitlines()
  assert len(lines) == 2
  assert lines[0].startswith("gen 1 train:   0%") and "1000/1000" in lines[-1]


def test_every_redraw_is_one_line_when_the_interval_is_zero():
  log = io.StringIO()
  with progress.bar(total=5, stream=log, mininterval=0, maxinterval=0, miniters=1) as bar:
    for _ in range(5):
      bar.update(1)
      bar.set_postfix(loss="1.0", refresh=False)
  lines = log.getvalue().splitlines()
  # One line per update, and the last state once more when the bar closes.
  assert [line.split("|")[0] for line in lines] == ["0%", "20%", "40%", "60%", "80%", "100%",
                                                    "100%"]


def test_a_terminal_gets_the_redrawn_bar_and_clears_it():
  screen = Terminal()
  for _ in progress.bar(range(3), stream=screen, mininterval=0):
    pass
  assert "\r" in screen.getvalue() and "\n" not in screen.getvalue()
