"""Several LM-mode runs side by side: a table per generation and one figure.

  python -m selfimprove_jax.compare --out=/tmp/collapse.png /tmp/collapse_replace \
      /tmp/collapse_accumulate /tmp/collapse_mix

Each run is named by its data policy. The human reference line is read from
the first run's human.json (the runs must share the human text to compare).
"""

import json
import sys
from pathlib import Path

from absl import app, flags

from selfimprove_jax.base import display, files
from selfimprove_jax.text import report

_OUT = flags.DEFINE_string("out", None, "Where to write the comparison figure (PNG).",
                           required=True)
_KEYS = ("heldout_nll", "kl_estimate", "true_nll", "tail_mass_ratio", "vocab_coverage",
         "distinct_2")


def load_run(workdir: Path) -> tuple[str, list[dict], dict]:
  metrics, human = workdir / "metrics.jsonl", workdir / "human.json"
  if not metrics.exists() or not human.exists():
    raise ValueError(f"{workdir} holds no language-model run (no metrics.jsonl or human.json)")
  history = files.read_metrics(metrics)
  if not history or "heldout_nll" not in history[0]:
    raise ValueError(f"{metrics} has no collapse metrics; is it a task-mode run?")
  return history[0]["data_policy"], history, json.loads(human.read_text())


def markdown_table(runs: dict[str, list[dict]], human: dict) -> str:
  """Rows: human, then each run's generations; columns: the collapse metrics."""
  keys = [k for k in _KEYS if human.get(k) is not None]
  cells = lambda name, gen, m: [name, gen] + [display.fmt(m.get(k), ".3f") for k in keys]
  rows = [cells("human text", "-", human)]
  rows += [cells(name, str(m["generation"]), m) for name, history in runs.items() for m in history]
  return display.markdown(["run", "gen"] + keys, rows)


def main(argv):
  if len(argv) < 2:
    raise app.UsageError("name one or more workdirs of LM-mode runs")
  runs, human = {}, None
  try:
    for workdir in argv[1:]:
      name, history, run_human = load_run(Path(workdir))
      runs[name if name not in runs else f"{name} ({workdir})"] = history
      human = human or run_human
  except ValueError as e:
    sys.exit(f"error: {e}")
  print(markdown_table(runs, human))
  report.compare_plot(runs, human, Path(_OUT.value))
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
