"""What runs show people: table cells, and figures written as PNG files without a display.
matplotlib loads here and only here, so the rest of the package runs without a backend."""

import os
from pathlib import Path


def fmt(x, spec=".2f") -> str:
  """A table cell: `x` formatted, or "-" for a value not measured."""
  return "-" if x is None else format(x, spec)


def markdown(head: list[str], rows: list[list[str]], labels: int = 1) -> str:
  """A markdown table: the first `labels` columns name the row, the rest are numbers
  (right-aligned)."""
  align = ["---"] * labels + ["---:"] * (len(head) - labels)
  return "\n".join("| " + " | ".join(cells) + " |" for cells in [head, align, *rows])


def pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save(fig, path: Path) -> None:
  import matplotlib.pyplot as plt
  fig.tight_layout()
  tmp = path.with_name("tmp_" + path.name)
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
