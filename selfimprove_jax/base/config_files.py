"""Loading `configs/*.py` files outside the command line (tests, configs built on others)."""

import importlib.util
from pathlib import Path

import ml_collections

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def load(spec: str | Path) -> ml_collections.ConfigDict:
  """`path[:arg]` -> that file's `get_config(arg)`, as `--config=path[:arg]` would give.

  A bare name such as "tiny" means configs/tiny.py.
  """
  path, _, arg = str(spec).partition(":")
  file = Path(path) if path.endswith(".py") else CONFIG_DIR / f"{path}.py"
  if not file.is_file():
    raise ValueError(f"config file {file} does not exist")
  module_spec = importlib.util.spec_from_file_location(f"config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)
