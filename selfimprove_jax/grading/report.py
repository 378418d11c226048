"""What a task-mode run shows people after each generation: the table and report.png."""

from pathlib import Path

from selfimprove_jax.base.display import fmt, pyplot, save


def table(history: list[dict], trained_max: int) -> str:
  """One row per generation: what was labelled, how good the kept labels were, accuracy."""
  difficulties = sorted({int(d) for m in history for d in m["accuracy"]})
  head = (f"{'gen':>3} {'label':>5} {'kept':>6} {'prec':>5} {'cons':>5} {'gate':>4} "
          f"{'front':>5} | " + " ".join(f"{('d' + str(d)) + ('*' if d <= trained_max else ''):>5}"
                                        for d in difficulties) + " |  secs")
  lines = [head, "-" * len(head)]
  for m in history:
    gate = {None: "-", True: "yes", False: "no"}[m["gate_passed"]]
    acc = " ".join(f"{fmt(m['accuracy'].get(str(d))):>5}" for d in difficulties)
    lines.append(f"{m['generation']:>3} {fmt(m['difficulty'], 'd'):>5} {m['kept']:>6} "
                 f"{fmt(m['kept_precision']):>5} {fmt(m['self_consistency']):>5} {gate:>4} "
                 f"{m['frontier']:>5} | {acc} | {sum(m['seconds'].values()):5.0f}")
  lines.append("label: difficulty self-labelled; prec: kept labels truly right (ground truth, "
               "measurement only);\ncons: self-consistency; front: frontier after the gate; "
               "d*: difficulties in the ground-truth data")
  return "\n".join(lines)


def plot(history: list[dict], path: Path) -> None:
  """Accuracy by difficulty, one line per generation; kept-label precision by generation."""
  plt = pyplot()
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
  save(fig, path)
