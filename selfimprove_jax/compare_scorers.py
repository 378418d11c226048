"""The same task under several scorers, side by side: which self-grading holds up?

  python -m selfimprove_jax.compare_scorers --workdir=/tmp/scorers

runs the config (the default demo unless --config says otherwise) once per
scorer in --arms, each in <workdir>/<arm> (resumable like any run), then
prints a markdown table and writes <workdir>/comparison.md and
<workdir>/comparison.png: final accuracy by difficulty, kept-label precision
and accuracy at the hardest difficulty per generation, and seconds per
generation. A scorer's stages are joined by "+" in an arm ("length+majority_vote").

The error-avalanche experiment is the same command with wrong labels injected,
and the clean runs as the baseline:

  python -m selfimprove_jax.compare_scorers --workdir=/tmp/avalanche \
      --arms=none,majority_vote --config.noise.generation=1 \
      --config.noise.fraction=0.5 --label=injected --baseline=/tmp/scorers
"""

import sys
from pathlib import Path

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from selfimprove_jax.base import display, files
from selfimprove_jax.base.errors import UserError
from selfimprove_jax.core import sharding
from selfimprove_jax.grading.tasks import TASKS
from selfimprove_jax.run import loop

ARMS = ("none", "majority_vote", "confidence", "self_judge", "verifier")


def default_arms(config: ml_collections.ConfigDict) -> list[str]:
  """ARMS, and the round trip where the task has an inverse question to ask."""
  task = TASKS.get(config.task)
  return list(ARMS) + (["round_trip"] if task is not None and task.has_inverse else [])


def run_arms(config: ml_collections.ConfigDict, workdir: Path, arms) -> dict[str, list[dict]]:
  """Runs (or resumes, or finds finished) each arm; returns its metrics by arm."""
  runs = {}
  for arm in arms:
    arm_config = ml_collections.ConfigDict(config.to_dict())  # an unlocked copy
    arm_config.scorer = arm.replace("+", ",")
    print(f"=== scorer {arm_config.scorer}: {workdir / arm}", flush=True)
    runs[arm] = loop.run(arm_config, str(workdir / arm))
  return runs


def load_arms(workdir: Path, only=None) -> dict[str, list[dict]]:
  """The finished arms of an earlier comparison (those named in `only`, if given)."""
  runs = {}
  for metrics in sorted(workdir.glob("*/metrics.jsonl")):
    arm = metrics.parent.name
    if only is None or arm in only:
      runs[arm] = files.read_metrics(metrics)
  if not runs:
    wanted = f" of the arms {list(only)}" if only is not None else ""
    raise UserError(f"--baseline {workdir} holds no finished run{wanted} "
                    "(no <arm>/metrics.jsonl); see --baseline_arms")
  return runs


def markdown_table(runs: dict[str, list[dict]], trained_max: int) -> str:
  """One row per arm: kept-label precision per generation, final accuracy beyond the
  ground truth's difficulties, and the total time."""
  gens = sorted({m["generation"] for h in runs.values() for m in h if m["generation"] > 0})
  beyond = sorted({int(d) for h in runs.values() for d in h[-1]["accuracy"]
                   if int(d) > trained_max})
  fmt = display.fmt
  head = (["scorer"] + [f"prec g{g}" for g in gens] + ["acc d1-" + str(trained_max)]
          + [f"acc d{d}" for d in beyond] + ["minutes"])
  rows = []
  for arm, history in runs.items():
    by_gen = {m["generation"]: m for m in history}
    final = history[-1]["accuracy"]
    seen = [final[d] for d in final if int(d) <= trained_max]
    cells = ([arm] + [fmt(by_gen.get(g, {}).get("kept_precision")) for g in gens]
             + [fmt(sum(seen) / len(seen))] + [fmt(final.get(str(d))) for d in beyond]
             + [f"{sum(sum(m['seconds'].values()) for m in history) / 60:.1f}"])
    rows.append(cells)
  return display.markdown(head, rows)


def plot(runs: dict[str, list[dict]], path: Path) -> None:
  plt = display.pyplot()
  fig, (acc, prec, hard, secs) = plt.subplots(1, 4, figsize=(18, 4))
  hardest = max(int(d) for h in runs.values() for d in h[-1]["accuracy"])
  for arm, history in runs.items():
    final = history[-1]["accuracy"]
    ds = sorted(int(d) for d in final)
    line, = acc.plot(ds, [final[str(d)] for d in ds], marker="o", label=arm)
    style = dict(marker="o", color=line.get_color(), label=arm)
    labelled = [m for m in history if m["generation"] > 0]
    prec.plot([m["generation"] for m in labelled],
              [m["kept_precision"] if m["kept_precision"] is not None else float("nan")
               for m in labelled], **style)
    hard.plot([m["generation"] for m in history],
              [m["accuracy"].get(str(hardest)) for m in history], **style)
    secs.plot([m["generation"] for m in history],
              [sum(m["seconds"].values()) for m in history], **style)
  acc.set(xlabel="difficulty", ylabel="greedy accuracy", ylim=(-0.02, 1.02),
          title="after the last generation")
  prec.set(xlabel="generation", ylim=(-0.02, 1.02), title="kept labels truly right")
  hard.set(xlabel="generation", ylim=(-0.02, 1.02), title=f"accuracy at difficulty {hardest}")
  secs.set(xlabel="generation", ylabel="seconds", title="compute per generation")
  gens = sorted({m["generation"] for h in runs.values() for m in h})
  for ax in (acc, prec, hard, secs):
    ax.legend(fontsize="small")
    if ax is not acc:
      ax.set_xticks(gens)
  display.save(fig, path)


_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).resolve().parents[1] / "configs" / "default.py"),
    "Python config file; its scorer is replaced by each arm's.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "One subdirectory per arm goes here.",
                               required=True)
_ARMS = flags.DEFINE_list("arms", None, "Scorers to compare; stages joined by '+' (default: "
                          f"{','.join(ARMS)}, and round_trip where the task has an inverse).")
_BASELINE = flags.DEFINE_string(
    "baseline", None, "A finished comparison whose runs join the table, as '<arm> (baseline)'.")
_LABEL = flags.DEFINE_string(
    "label", None, "Added to this run's arm names in the table and figure, e.g. 'injected'.")
_BASELINE_ARMS = flags.DEFINE_list(
    "baseline_arms", None, "Which of the baseline's arms join the table (default: --arms).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  workdir = Path(_WORKDIR.value)
  loop.quiet_library_logs()
  sharding.one_cpu_device_per_core()  # as the loop runs (main.py)
  arms = _ARMS.value or default_arms(_CONFIG.value)
  try:
    base = {}
    if _BASELINE.value:  # read first: a wrong path should not wait for the runs
      base = load_arms(Path(_BASELINE.value), only=_BASELINE_ARMS.value or arms)
    runs = run_arms(_CONFIG.value, workdir, arms)
    if _LABEL.value:
      runs = {f"{arm} ({_LABEL.value})": h for arm, h in runs.items()}
    runs = {f"{arm} (baseline)": h for arm, h in base.items()} | runs
  except UserError as e:
    sys.exit(f"error: {e}")
  table = markdown_table(runs, _CONFIG.value.data.max_difficulty)
  print(table)
  files.atomic_write(workdir / "comparison.md", table + "\n")
  plot(runs, workdir / "comparison.png")
  print(f"wrote {workdir / 'comparison.md'} and {workdir / 'comparison.png'}")


if __name__ == "__main__":
  app.run(main)
