"""Checkpoints: a failed write leaves the older ones intact, an unreadable one is set aside."""

import resource
import signal

import jax
import numpy as np
import pytest

from selfimprove_jax.run import checkpoint


def arrays(seed: int):
  # Random values: Orbax compresses, and constant arrays would fit under any limit.
  return dict(w=jax.random.normal(jax.random.key(seed), (256, 256)))


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_says_so(tmp_path):
  ckpt = checkpoint.Checkpoints(tmp_path, every_steps=0)
  ckpt.save_generation(0, arrays(0), dict(generation=0))
  # A file-size limit makes the kernel refuse the write, as a full disk does.
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))
  try:
    with pytest.raises(checkpoint.WriteFailed, match=r"^could not write generation 1's checkpoint "
                       r".*File too large.*; generation 0's checkpoint is intact") as e:
      ckpt.save_generation(1, arrays(1), dict(generation=1))
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert "\n" not in str(e.value)
  assert ckpt.generations() == [0]
  assert sorted(p.name for p in (tmp_path / "checkpoints" / "generations").iterdir()) == ["0"]
  restored, meta = ckpt.restore_generation(0, like=arrays(0))
  np.testing.assert_array_equal(restored["w"], arrays(0)["w"])
  ckpt.close()


def test_set_aside_moves_a_checkpoint_out_of_sight_and_keeps_it(tmp_path):
  ckpt = checkpoint.Checkpoints(tmp_path, every_steps=0)
  for g in (0, 1):
    ckpt.save_generation(g, arrays(g), dict(generation=g))
  target = ckpt.set_aside("generations", 1, 1)
  assert ckpt.generations() == [0] and ckpt.latest_generation() == 0
  assert target == tmp_path.resolve() / "checkpoints" / "unreadable" / "generations_1"
  assert (target / "arrays").is_dir()
  ckpt.save_generation(1, arrays(1), dict(generation=1))  # the redone generation saves again
  ckpt.set_aside("generations", 1, 1)
  assert (target.parent / "generations_1.1").is_dir()  # nothing overwritten
  ckpt.close()


def test_stale_progress_is_dropped_and_the_current_kept(tmp_path):
  ckpt = checkpoint.Checkpoints(tmp_path, every_steps=5)
  for g in (1, 2):
    ckpt.save_progress(g, 5, arrays(g), dict(generation=g, step=5, tokens_trained=0))
  ckpt.drop_stale_progress(keep=2)
  assert not (tmp_path / "checkpoints" / "progress_1").exists()
  assert ckpt.latest_progress(2) == 5
  ckpt.close()
