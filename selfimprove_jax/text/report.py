"""What a text-mode run shows people: the collapse table, report.png, and runs compared."""

from pathlib import Path

import numpy as np

from selfimprove_jax.base.display import fmt, pyplot, save
from selfimprove_jax.text import collapse

# (metrics key, column head, format) of the LM table, in order.
_LM_COLUMNS = (("heldout_nll", "h-nll", ".3f"), ("kl_estimate", "kl", ".3f"),
               ("true_nll", "t-nll", ".3f"), ("valid_fraction", "valid", ".2f"),
               ("tail_mass_ratio", "tail", ".2f"), ("vocab_coverage", "cover", ".2f"),
               ("distinct_2", "dist2", ".2f"), ("mean_chars", "chars", ".1f"))


def _lm_row(name: str, m: dict) -> str:
  cells = " ".join(f"{fmt(m.get(key), spec):>6}" for key, _, spec in _LM_COLUMNS)
  return f"{name:>5} {fmt(m.get('kept'), 'd') if 'kept' in m else '-':>6} | {cells}"


def lm_table(history: list[dict], human: dict) -> str:
  """One row per generation of collapse metrics, under a row for held-out human text."""
  head = f"{'gen':>5} {'kept':>6} | " + " ".join(f"{h:>6}" for _, h, _ in _LM_COLUMNS) + " |  secs"
  lines = [head, "-" * len(head), _lm_row("human", human) + " |     -"]
  lines += [_lm_row(str(m["generation"]), m) + f" | {sum(m['seconds'].values()):5.0f}"
            for m in history]
  lines.append("h-nll: held-out human text under the model (nats/char); kl: KL(truth||model) "
               "per char;\nt-nll: the model's samples under the truth; valid: samples that are "
               "sentences; tail: the samples'\nshare of rare words over the truth's; cover: "
               "vocabulary used; dist2: distinct word bigrams")
  return "\n".join(lines)


def _histogram_lines(ax, histories: list[tuple[str, dict]], colors, **style):
  # The last bin holds impossible and off-scale samples: left out of the curve,
  # still counted in the total, so each curve's area is its share of plausible samples.
  centers = np.sqrt(collapse.PERPLEXITY_BINS[:-2] * collapse.PERPLEXITY_BINS[1:-1])
  for (label, m), color in zip(histories, colors):
    counts = np.asarray(m["perplexity_histogram"], float)
    ax.plot(centers, counts[:-1] / max(1.0, counts.sum()), color=color, label=label, **style)
  ax.set(xscale="log", xlabel="per-sample perplexity (impossible samples left out)",
         ylabel="share of all samples")


def lm_plot(history: list[dict], human: dict, path: Path) -> None:
  """One run: NLL and KL, tail and coverage by generation; perplexity histograms."""
  plt = pyplot()
  fig, (nll, tail, hist) = plt.subplots(1, 3, figsize=(15, 4))
  gens = [m["generation"] for m in history]
  for ax, keys in ((nll, ("heldout_nll", "kl_estimate", "true_nll")),
                   (tail, ("tail_mass_ratio", "vocab_coverage", "distinct_2"))):
    for key in keys:
      if history and history[0].get(key) is not None:
        line, = ax.plot(gens, [m.get(key) for m in history], marker="o", label=key)
        if human.get(key) is not None:
          ax.axhline(human[key], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set(xlabel="generation", xticks=gens)
    ax.legend(fontsize="small")
  nll.set(title="likelihood (dotted: human text)")
  tail.set(title="diversity and tails (dotted: human text)")
  colors = plt.cm.viridis(np.linspace(0, 1, max(2, len(history))))
  runs = [(f"gen {m['generation']}", m) for m in history if m.get("perplexity_histogram")]
  _histogram_lines(hist, runs, colors)
  if human.get("perplexity_histogram"):
    _histogram_lines(hist, [("human", human)], ["black"], linestyle="--")
  hist.set(title="perplexity of samples")
  hist.legend(fontsize="small", ncol=2)
  save(fig, path)


def compare_plot(runs: dict[str, list[dict]], human: dict, path: Path) -> None:
  """Several runs (e.g. the three data policies) side by side."""
  plt = pyplot()
  keys = ("heldout_nll", "kl_estimate", "tail_mass_ratio", "vocab_coverage")
  keys = tuple(k for k in keys if any(h and h[0].get(k) is not None for h in runs.values()))
  fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 3.8))
  for ax, key in zip(axes, keys):
    for name, history in runs.items():
      ax.plot([m["generation"] for m in history], [m.get(key) for m in history], marker="o",
              label=name)
    if human.get(key) is not None:
      ax.axhline(human[key], color="black", linestyle=":", linewidth=1, label="human")
    ax.set(xlabel="generation", title=key)
    ax.legend(fontsize="small")
  last = [(f"{name}, gen {h[-1]['generation']}", h[-1]) for name, h in runs.items()
          if h and h[-1].get("perplexity_histogram")]
  _histogram_lines(axes[-1], last, plt.cm.tab10(np.arange(len(last))))
  if human.get("perplexity_histogram"):
    _histogram_lines(axes[-1], [("human", human)], ["black"], linestyle="--")
  axes[-1].set(title="perplexity of final samples")
  axes[-1].legend(fontsize="small")
  save(fig, path)
