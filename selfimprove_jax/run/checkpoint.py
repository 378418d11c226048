"""Orbax checkpoints: one per generation, and progress points inside a generation's training.

Layout under `<workdir>/checkpoints`:
  generations/<g>/        after generation g finished: arrays (parameters, optimizer
                          state, root RNG key) and meta (generation, curriculum,
                          metrics, where the kept labels are)
  progress_<g>/<step>/    generation g's training, saved every `every_steps`
                          steps; deleted once generation g's checkpoint is final
  unreadable/             checkpoints that failed to restore, moved out of the
                          way (never deleted) when the run fell back past them

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a process killed mid-save leaves no half checkpoint behind, only
a temporary directory that the next run's managers delete.

The kept synthetic data is not copied into checkpoints: each generation writes
it once, readable, to `<workdir>/generations/<g>/examples.jsonl` before it
trains, and the meta says which files hold the labels so far.
"""

import contextlib
import logging
import os
import shutil
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from selfimprove_jax.base import files
from selfimprove_jax.base.errors import first_line
from selfimprove_jax.base.files import WriteFailed
from selfimprove_jax.core import sharding


def _manager(directory: Path, max_to_keep: int | None) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(directory, options=options, item_names=("arrays", "meta"))


def _abstract(tree):
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
  """Saves and finds a run's checkpoints; restore targets give shapes and shardings."""

  def __init__(self, workdir: str | Path, *, every_steps: int, max_to_keep: int | None = None):
    self.directory = Path(workdir).resolve() / "checkpoints"
    self.every_steps = every_steps
    # max_to_keep=None keeps every generation (train.init="restart" needs generation 0).
    self._generations = _manager(self.directory / "generations", max_to_keep)
    self._progress: dict[int, ocp.CheckpointManager] = {}

  # -- generations -----------------------------------------------------------

  def latest_generation(self) -> int | None:
    return self._generations.latest_step()

  def generations(self) -> list[int]:
    return sorted(self._generations.all_steps())

  @contextlib.contextmanager
  def _writing(self, manager: ocp.CheckpointManager, what: str):
    """Turns a failed write into WriteFailed, after removing what it left half written."""
    try:
      yield
    except Exception as e:  # noqa: BLE001  TensorStore reports OS errors as ValueError
      if not (isinstance(e, OSError) or "os_error_code" in str(e)):
        raise  # not the disk: a bug, with its traceback
      for tmp in Path(manager.directory).glob("*.orbax-checkpoint-tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)
      latest = self._generations.latest_step()
      kept = "no earlier checkpoint" if latest is None else f"generation {latest}'s checkpoint"
      raise WriteFailed(f"could not write {what} under {manager.directory} ({first_line(e)}); "
                        f"{kept} is intact and a rerun resumes from it once there is room") from None

  def save_generation(self, generation: int, arrays, meta: dict) -> None:
    with self._writing(self._generations, f"generation {generation}'s checkpoint"):
      self._generations.save(generation, args=ocp.args.Composite(
          arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)), force=True)
      self._generations.wait_until_finished()  # final before we report the generation done
    self._drop_progress(generation)

  def restore_generation(self, generation: int, like):
    """(arrays shaped and placed like `like`, meta) of a finished generation."""
    out = self._generations.restore(generation, args=ocp.args.Composite(
        arrays=ocp.args.StandardRestore(_abstract(like)), meta=ocp.args.JsonRestore()))
    return out.arrays, out.meta

  def generation_meta(self, generation: int) -> dict:
    out = self._generations.restore(generation, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))
    return out.meta

  # -- progress inside a generation ------------------------------------------

  def _progress_manager(self, generation: int) -> ocp.CheckpointManager:
    if generation not in self._progress:
      self._progress[generation] = _manager(self.directory / f"progress_{generation}", 1)
    return self._progress[generation]

  def due(self, step: int, total: int) -> bool:
    """Save after this many steps? (Never at the end: the generation checkpoint covers it.)"""
    return self.every_steps > 0 and step % self.every_steps == 0 and step < total

  def save_progress(self, generation: int, step: int, arrays, meta: dict) -> None:
    manager = self._progress_manager(generation)
    # Written in the background while training goes on; a failure surfaces at the next save.
    with self._writing(manager, f"generation {generation}'s progress"):
      manager.save(step, args=ocp.args.Composite(
          arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)), force=True)

  def latest_progress(self, generation: int) -> int | None:
    if not (self.directory / f"progress_{generation}").exists():
      return None
    return self._progress_manager(generation).latest_step()

  def restore_progress(self, generation: int, step: int, like):
    out = self._progress_manager(generation).restore(step, args=ocp.args.Composite(
        arrays=ocp.args.StandardRestore(_abstract(like)), meta=ocp.args.JsonRestore()))
    return out.arrays, out.meta

  def set_aside(self, kind: str, generation: int, step: int) -> Path:
    """Moves an unreadable checkpoint (`kind` "generations" or "progress") to unreadable/."""
    manager = self._generations if kind == "generations" else self._progress_manager(generation)
    source = Path(manager.directory) / str(step)
    target = files.free_name(self.directory / "unreadable" / f"{source.parent.name}_{step}")
    if sharding.is_writer():
      target.parent.mkdir(parents=True, exist_ok=True)
      os.replace(source, target)
    sharding.sync(f"set aside {source}")
    manager.reload()
    logging.warning("moved the unreadable checkpoint %s to %s", source, target)
    return target

  def drop_stale_progress(self, keep: int) -> None:
    """Removes the progress of every generation but `keep` (the one about to
    run): a crash between a generation's checkpoint and its progress clean-up
    leaves one, and a fallback to an older generation makes newer ones stale."""
    for path in self.directory.glob("progress_*"):
      suffix = path.name.removeprefix("progress_")
      if suffix.isdigit() and int(suffix) != keep:
        self._drop_progress(int(suffix))

  def _drop_progress(self, generation: int) -> None:
    manager = self._progress.pop(generation, None)
    if manager is not None:
      manager.wait_until_finished()
      manager.close()
    if sharding.is_writer():
      shutil.rmtree(self.directory / f"progress_{generation}", ignore_errors=True)

  def close(self) -> None:
    for manager in (self._generations, *self._progress.values()):
      manager.wait_until_finished()
      manager.close()
