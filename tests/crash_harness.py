"""Kills a run with SIGKILL again and again, restarts it, and checks that nothing was lost.

  python tests/crash_harness.py --kills=50        # the long version, 4-6 minutes on 2 cores

Each kill lands at a chosen place in the code, whatever the machine's speed:
inside the sampler's loop after its first chunk, after scoring, between two
training steps, while a checkpoint is being written (generation or progress),
half-way through writing an examples file, or half-way through appending a
metrics line. The long version adds kills at random times. After the last kill the run is left
to finish, and its outputs must equal an uninterrupted run's: the same
metrics, training log, examples files and final parameters (bit for bit), no
line logged twice, and no temporary files or directories left behind.

The killing happens inside the run's own process: a hook installed in front of
a library function sends SIGKILL to the process itself, so the kill is as
abrupt as the kernel's and lands exactly where it is aimed.
"""

import argparse
import collections
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# tiny.py cut down to what the harness needs: three generations, progress saves.
OVERRIDES = {"train.steps": 30, "train.steps_per_generation": 20, "checkpoint.every_steps": 10,
             "sample.prompts_per_generation": 16, "eval.per_difficulty": 8}
# Four CPU devices: the two-process test (tests/test_multihost.py) splits them 2 + 2.
DEVICES = 4
# Where a kill can be aimed: "[term-|hold-]<point>:<generation>[:<n>]" (see _die).
POINTS = ("sample", "score", "train", "checkpoint", "progress", "labels", "metrics")


# ----------------------------------------------------------------------------
# The child: one attempt at the run, with a kill armed.


def _die():
  """What the armed point does: SIGKILL, SIGTERM ("term-<point>", as a preemption
  sends), or for "hold-<point>" stay alive there until the parent says go on (the
  workdir lock's test needs a live run at a known place)."""
  if _ACTION[0] == "hold":
    print("holding", flush=True)
    sys.stdin.readline()
  else:
    os.kill(os.getpid(), _ACTION[0])


_ACTION = [signal.SIGKILL]


def _arm(point: str) -> None:
  """Installs the hook that kills this process at `point` ("" for none)."""
  from selfimprove_jax.run import experiment
  from selfimprove_jax.base import files
  from selfimprove_jax.grading import labelling
  from selfimprove_jax.core import sampling
  import orbax.checkpoint as ocp

  if not point:
    return
  if point.startswith("term-"):
    point, _ACTION[0] = point.removeprefix("term-"), signal.SIGTERM
  elif point.startswith("hold-"):
    point, _ACTION[0] = point.removeprefix("hold-"), "hold"
  name, g, *n = point.split(":")
  g, n = int(g), int(n[0]) if n else 1

  if name == "sample":  # inside the sampler's chunk loop, after its first chunk of generation g
    original_stage, original_chunks = labelling.TaskMode.sample, sampling.Sampler.in_chunks
    armed = [False]
    def sample_stage(self, setup, params, curriculum, gen, key, rng):
      armed[0] = gen == g
      try:
        return original_stage(self, setup, params, curriculum, gen, key, rng)
      finally:
        armed[0] = False
    def in_chunks(self, params, prompts, key, rows_per_call, on_chunk=lambda rows: None):
      def after_chunk(rows):
        if armed[0]:
          _die()  # SIGTERM: the handler sets its flag before on_chunk looks at it
        on_chunk(rows)
      return original_chunks(self, params, prompts, key, rows_per_call, after_chunk)
    labelling.TaskMode.sample, sampling.Sampler.in_chunks = sample_stage, in_chunks
  elif name == "score":  # scores computed, nothing filtered or written yet
    original_filter = labelling.TaskMode.filter
    def filter_stage(self, setup, gen, *args, **kwargs):
      if gen == g:
        _die()
      return original_filter(self, setup, gen, *args, **kwargs)
    labelling.TaskMode.filter = filter_stage
  elif name == "train":  # the n-th step this attempt runs in generation g, just dispatched
    original_step = experiment.Setup.train_step
    def train_step(self, gen):
      step = original_step(self, gen)
      if gen != g:
        return step
      calls = [0]
      def counted(state, batch):
        calls[0] += 1
        out = step(state, batch)
        if calls[0] == n:
          _die()
        return out
      return counted
    experiment.Setup.train_step = train_step
  elif name in ("checkpoint", "progress"):  # Orbax has started writing, not finished
    original_save = ocp.CheckpointManager.save
    folder = "generations" if name == "checkpoint" else f"progress_{g}"
    def save(self, step, *args, **kwargs):
      result = original_save(self, step, *args, **kwargs)
      if Path(self.directory).name == folder and (name == "progress" or step == g):
        _die()
      return result
    ocp.CheckpointManager.save = save
  elif name in ("labels", "metrics"):  # half the bytes written, then the kill
    target = f"generations/{g:03d}/examples.jsonl" if name == "labels" else "metrics.jsonl"
    original_atomic, original_append = files.atomic_write, files.append_jsonl
    def half(path, text):
      with open(path, "a") as f:
        f.write(text[:len(text) // 2])
      _die()
    def atomic_write(path, text):
      if str(path).endswith(target):
        half(path.with_name(path.name + ".tmp"), text)
      original_atomic(path, text)
    def append_jsonl(path, row):
      if str(path).endswith(target) and row.get("generation") == g:
        half(path, json.dumps(row) + "\n")
      original_append(path, row)
    files.atomic_write, files.append_jsonl = atomic_write, append_jsonl
  else:
    raise SystemExit(f"kill point must be one of {POINTS}, got {point!r}")


def _child(workdir: str, point: str, flags: list[str]) -> None:
  """The command line itself, with the hook armed in its process."""
  # Set as the process's own arguments before the flags are defined: config
  # overrides are found in sys.argv.
  sys.argv = ["main", "--config=configs/tiny.py", f"--workdir={workdir}",
              *(f"--config.{field}={value}" for field, value in OVERRIDES.items()), *flags]
  from absl import app
  from selfimprove_jax import main
  _arm(point)
  app.run(main.main)


# ----------------------------------------------------------------------------
# The parent: attempts, kills, and the comparison.


def launch(workdir: Path, point: str = "", devices: int = DEVICES,
           flags: tuple[str, ...] = (), talk: bool = False) -> subprocess.Popen:
  """Starts the child: the command line on `devices` CPU devices, extra `flags` appended;
  with `talk`, its stdin and stdout are pipes (for "hold-" points)."""
  # Attempts share compiled programs through JAX's persistent cache, as a
  # restarted job on a VM would: a restart then costs its start-up, not a recompile.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
             JAX_COMPILATION_CACHE_DIR=str(workdir.parent / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return subprocess.Popen([sys.executable, __file__, "child", str(workdir), point, *flags],
                          cwd=ROOT, env=env, stdin=subprocess.PIPE if talk else None,
                          stdout=subprocess.PIPE if talk else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


def attempt(workdir: Path, point: str = "", devices: int = DEVICES,
            timeout: float | None = None, flags: tuple[str, ...] = ()) -> int:
  """Runs the child once, extra `flags` appended; returns its exit code (-9 when killed)."""
  process = launch(workdir, point, devices, flags)
  try:
    _, err = process.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:  # a kill at a random time, from outside
    process.kill()
    process.communicate()
  if process.returncode not in (0, -signal.SIGKILL):
    raise RuntimeError(f"attempt {point or 'to finish'} failed ({process.returncode}):\n{err}")
  return process.returncode


def outputs(workdir: Path) -> dict:
  """Everything that must match between two runs, with timings taken out."""
  def jsonl(name):
    rows = [json.loads(x) for x in (workdir / name).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
  out = {"metrics.jsonl": jsonl("metrics.jsonl"), "train_log.jsonl": jsonl("train_log.jsonl")}
  for path in sorted(workdir.glob("generations/*/*")):
    text = path.read_text()
    if path.name == "labelling.json":
      text = {k: v for k, v in json.loads(text).items() if k != "seconds"}
    out[str(path.relative_to(workdir))] = text
  out["params"] = params_digest(workdir)
  return out


def params_digest(workdir: Path) -> str:
  """A hash of the newest generation checkpoint's arrays, read back as numpy."""
  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  folder = workdir / "checkpoints" / "generations"
  path = folder / str(max(int(p.name) for p in folder.iterdir() if p.name.isdigit())) / "arrays"
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                          ocp.StandardCheckpointer().metadata(path).item_metadata.tree)
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(ocp.PyTreeCheckpointer().restore(path, restore_args=as_numpy)):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def leftovers(workdir: Path) -> list[str]:
  """Temporary files, temporary checkpoint directories and progress left after a finished run."""
  found = [p for p in (workdir / "checkpoints").rglob("*")
           if "tmp" in p.name or p.name.startswith("progress_") or p.name == "unreadable"]
  found += [p for p in workdir.rglob("*.tmp") if "tfds" not in p.parts]
  return sorted(str(p.relative_to(workdir)) for p in found)


def position(workdir: Path) -> tuple[int, int]:
  """(the last finished generation or -1, the last progress step saved inside the next one or 0)."""
  steps = lambda folder: [int(p.name) for p in folder.glob("*") if p.name.isdigit()]
  finished = max(steps(workdir / "checkpoints" / "generations"), default=-1)
  return finished, max(steps(workdir / "checkpoints" / f"progress_{finished + 1}"), default=0)


def reachable(workdir: Path, point: str) -> bool:
  """Will an attempt started now pass `point`? (Points behind the run are skipped.)"""
  name, g, *n = point.split(":")
  finished, saved = position(workdir)
  steps = OVERRIDES["train.steps" if int(g) == 0 else "train.steps_per_generation"]
  if int(g) != finished + 1:
    return int(g) > finished
  if name in ("sample", "score", "labels"):
    return saved == 0
  if name == "train":
    return saved + int(n[0]) <= steps
  if name == "progress":
    return saved + OVERRIDES["checkpoint.every_steps"] < steps
  return True


def timeline(repeats: int = 1, generations: int = 2) -> list[str]:
  """Every kill point in the order a run passes them, each `repeats` times."""
  out = []
  for g in range(generations + 1):
    names = ([] if g == 0 else ["sample", "score", "labels"]) + [
        "train:5", "progress", "train:7", "checkpoint", "metrics"]
    for name in names:
      kind, _, n = name.partition(":")
      out += [f"{kind}:{g}" + (f":{n}" if n else "")] * repeats
  return out


def crash_run(workdir: Path, points: list[str], kills: int, devices: int = DEVICES,
              random_every: int = 0, seed: int = 0, log=print) -> list[tuple[str, int]]:
  """Attempts the run at each reachable point until `kills` attempts died, then to the end.

  With `random_every` = k, every k-th attempt is instead killed from outside
  at a random time.
  """
  rng = random.Random(seed)
  history = []
  for point in points:
    if sum(code == -signal.SIGKILL for _, code in history) >= kills:
      break
    if random_every and len(history) % random_every == random_every - 1:
      # Start-up takes about 5 s: these land in it (imports, restore, clean-up) or
      # just after. Later, with compiled programs cached, a generation takes seconds.
      code = attempt(workdir, "", devices, timeout=rng.uniform(1, 6))
      history.append(("random", code))
      log(f"random kill: exit {code}")
    if reachable(workdir, point):
      code = attempt(workdir, point, devices)
      history.append((point, code))
      log(f"kill at {point}: exit {code}")
  attempt(workdir, "", devices)
  return history


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=50)
  parser.add_argument("--devices", type=int, default=DEVICES)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--dir", default="/tmp/selfimprove_crash")
  args = parser.parse_args()
  base = Path(args.dir)
  if base.exists():
    raise SystemExit(f"--dir {base} exists; remove it or pass another")
  tic = time.time()
  attempt(base / "reference", "", args.devices)
  points = timeline()
  history = crash_run(base / "crashed", timeline(repeats=-(-args.kills // len(points))),
                      args.kills, args.devices, random_every=6, seed=args.seed)
  expected, got = outputs(base / "reference"), outputs(base / "crashed")
  differ = [k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)]
  left = leftovers(base / "crashed")
  killed = sum(code == -signal.SIGKILL for _, code in history)
  kinds = collections.Counter(point.split(":")[0] for point, code in history
                              if code == -signal.SIGKILL)
  print(f"{killed} kills in {len(history)} attempts ({dict(kinds)}), {time.time() - tic:.0f} s; "
        f"outputs that differ from the uninterrupted run: {differ or 'none'}; "
        f"leftovers: {left or 'none'}")
  sys.exit(1 if differ or left else 0)


if __name__ == "__main__":
  if len(sys.argv) > 1 and sys.argv[1] == "child":
    _child(sys.argv[2], sys.argv[3], sys.argv[4:])
  else:
    main()
