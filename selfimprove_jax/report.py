"""What a run leaves for people: metrics.jsonl, a summary table, and report.png."""

import json
import os
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
  if not path.exists():
    return []
  rows = []
  for n, line in enumerate(path.read_text().splitlines(), 1):
    if not line.strip():
      continue
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      raise ValueError(f"{path}:{n} is not a JSON object; fix or remove that line") from None
  return rows


def atomic_write(path: Path, text: str) -> None:
  """A crash leaves the old file or the new one, never half of one."""
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_metrics(path: Path, rows: list[dict]) -> None:
  atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def append_metrics(path: Path, row: dict) -> None:
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def trim_jsonl(path: Path, keep) -> None:
  """Drops the lines of a JSON-lines log for which keep(row) is false (work being redone)."""
  if path.exists():
    write_metrics(path, [r for r in read_metrics(path) if keep(r)])


def _fmt(x, spec=".2f") -> str:
  return "-" if x is None else format(x, spec)


def table(history: list[dict], trained_max: int) -> str:
  """One row per generation: what was labelled, how good the kept labels were, accuracy."""
  difficulties = sorted({int(d) for m in history for d in m["accuracy"]})
  head = (f"{'gen':>3} {'label':>5} {'kept':>6} {'prec':>5} {'cons':>5} {'gate':>4} "
          f"{'front':>5} | " + " ".join(f"{('d' + str(d)) + ('*' if d <= trained_max else ''):>5}"
                                        for d in difficulties) + " |  secs")
  lines = [head, "-" * len(head)]
  for m in history:
    gate = {None: "-", True: "yes", False: "no"}[m["gate_passed"]]
    acc = " ".join(f"{_fmt(m['accuracy'].get(str(d))):>5}" for d in difficulties)
    lines.append(f"{m['generation']:>3} {_fmt(m['difficulty'], 'd'):>5} {m['kept']:>6} "
                 f"{_fmt(m['kept_precision']):>5} {_fmt(m['self_consistency']):>5} {gate:>4} "
                 f"{m['frontier']:>5} | {acc} | {sum(m['seconds'].values()):5.0f}")
  lines.append("label: difficulty self-labelled; prec: kept labels truly right (ground truth, "
               "measurement only);\ncons: self-consistency; front: frontier after the gate; "
               f"d*: difficulties in the ground-truth data")
  return "\n".join(lines)


def plot(history: list[dict], path: Path) -> None:
  """Accuracy by difficulty, one line per generation; kept-label precision by generation."""
  import matplotlib  # only here: the rest of the package runs without a plotting backend
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  colors = plt.cm.viridis([i / max(1, len(history) - 1) for i in range(len(history))])
  for m, color in zip(history, colors):
    ds = sorted(int(d) for d in m["accuracy"])
    left.plot(ds, [m["accuracy"][str(d)] for d in ds], marker="o", color=color,
              label=f"gen {m['generation']}")
  left.set(xlabel="difficulty", ylabel="greedy accuracy (ground truth)", ylim=(-0.02, 1.02),
           title="accuracy by difficulty")
  left.legend(fontsize="small", ncol=2)
  labelled = [m for m in history if m["difficulty"] is not None]
  gens = [m["generation"] for m in labelled]
  right.plot(gens, [m["kept_precision"] if m["kept_precision"] is not None else float("nan")
                    for m in labelled], marker="o", label="kept-label precision")
  right.plot(gens, [m["self_consistency"] for m in labelled], marker="s",
             label="self-consistency")
  right.set(xlabel="generation", ylim=(-0.02, 1.02), title="self-labels", xticks=gens)
  right.legend(fontsize="small")
  fig.tight_layout()
  tmp = path.with_name("tmp_" + path.name)
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
