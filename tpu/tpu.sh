#!/usr/bin/env bash
# A Cloud TPU VM for selfimprove_jax, from creation to deletion (see docs/scaling.md, "Cloud TPU VMs").
#
#   export TPU_ZONE=us-west4-a TPU_TYPE=v5litepod-8   # where, and which slice
#   tpu/tpu.sh create                      # the VM (every worker of a multi-host slice)
#   tpu/tpu.sh setup                       # Python 3.11, this checkout and '.[tpu]' on every worker
#   tpu/tpu.sh run --config=configs/tpu.py # main on every worker, joined by --distributed
#   tpu/tpu.sh logs                        # follow worker 0's log (Ctrl-C leaves the run going)
#   tpu/tpu.sh fetch                       # the workdir into ./tpu_runs/$TPU_RUN
#   tpu/tpu.sh delete
#
# Environment: TPU_ZONE (required), TPU_TYPE (v4-8, v5litepod-8, v5p-8, ...; default
# v5litepod-8), TPU_NAME (default selfimprove), TPU_RUN (the run's name, default run),
# TPU_SPOT=1 for a Spot VM, TPU_BUCKET for a multi-host slice (below).
#
# A multi-host slice (v4-16, v5litepod-16, v5p-16, ...) runs one process per worker, and
# they must share the workdir: with TPU_BUCKET=my-bucket, setup mounts gs://my-bucket on
# every worker at /mnt/selfimprove with Cloud Storage FUSE and the run writes there.
set -euo pipefail

TPU_NAME="${TPU_NAME:-selfimprove}"
TPU_TYPE="${TPU_TYPE:-v5litepod-8}"
TPU_RUN="${TPU_RUN:-run}"
TPU_BUCKET="${TPU_BUCKET:-}"
CODE_DIR=selfimprove_jax          # on each worker, under the home directory
MOUNT=/mnt/selfimprove            # where TPU_BUCKET is mounted
LOG=selfimprove.log               # each worker's output, in its home directory

die() { echo "tpu.sh: $*" >&2; exit 2; }

# The TPU software version (the VM image) for each generation; JAX comes from pip.
runtime_version() {
  case "$1" in
    v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) die "TPU_TYPE=$1 is not one of v4-N, v5litepod-N, v5p-N, v6e-N" ;;
  esac
}

tpu() { gcloud compute tpus tpu-vm "$@" --zone="$TPU_ZONE"; }

on_all() { tpu ssh "$TPU_NAME" --worker=all --command="$1"; }

workdir() {  # on a worker, relative to the home directory
  if [[ -n "$TPU_BUCKET" ]]; then echo "$MOUNT/$TPU_RUN"; else echo "runs/$TPU_RUN"; fi
}

create() {
  local version extra=()
  version="$(runtime_version "$TPU_TYPE")"  # exits here for an unknown type
  [[ -n "${TPU_SPOT:-}" ]] && extra+=(--spot)
  tpu create "$TPU_NAME" --accelerator-type="$TPU_TYPE" --version="$version" "${extra[@]}"
}

setup() {
  local tarball
  tarball="$(mktemp -t selfimprove.XXXXXX.tar.gz)"
  # Tracked files as they are in this checkout, edits included.
  git -C "$(dirname "$0")/.." ls-files -z |
    tar -C "$(dirname "$0")/.." --null -T - -czf "$tarball"
  tpu scp "$tarball" "$TPU_NAME:code.tar.gz" --worker=all
  rm -f "$tarball"
  # The images ship Python 3.10; the project needs 3.11 (Ubuntu 22.04 has it).
  on_all "set -e; sudo apt-get update -qq; sudo apt-get install -y -qq python3.11 python3.11-venv
    rm -rf $CODE_DIR && mkdir $CODE_DIR && tar -xzf code.tar.gz -C $CODE_DIR
    python3.11 -m venv venv && venv/bin/pip install -q --upgrade pip
    cd $CODE_DIR && ../venv/bin/pip install -q -e '.[tpu]'
    ../venv/bin/python -c 'import jax; print(\"jax\", jax.__version__)'"
  [[ -z "$TPU_BUCKET" ]] || on_all "set -e
    if ! command -v gcsfuse >/dev/null; then
      curl -fsS https://packages.cloud.google.com/apt/doc/apt-key.gpg |
        sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
      echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -cs) main\" |
        sudo tee /etc/apt/sources.list.d/gcsfuse.list
      sudo apt-get update -qq && sudo apt-get install -y -qq gcsfuse
    fi
    sudo mkdir -p $MOUNT && sudo chown \$USER $MOUNT
    mountpoint -q $MOUNT || gcsfuse --implicit-dirs --rename-dir-limit=100000 $TPU_BUCKET $MOUNT"
}

run() {
  # Detached from the ssh session, so a dropped connection does not stop the run;
  # re-running the same command after a preemption resumes from the workdir.
  local args=""
  [[ $# -eq 0 ]] || args="$(printf ' %q' "$@")"
  on_all "cd $CODE_DIR && setsid nohup ../venv/bin/python -m selfimprove_jax.main --distributed \
    --workdir=\$(cd && realpath -m $(workdir))$args > \$HOME/$LOG 2>&1 < /dev/null &"
}

logs() { tpu ssh "$TPU_NAME" --worker=0 --command="tail -n 100 -F \$HOME/$LOG"; }

fetch() {
  mkdir -p tpu_runs
  tpu scp --recurse "$TPU_NAME:$(workdir)" tpu_runs/ --worker=0
}

delete() { tpu delete "$TPU_NAME" --quiet; }

[[ $# -ge 1 ]] || die "usage: tpu/tpu.sh {create|setup|run [main flags]|logs|fetch|delete}"
[[ -n "${TPU_ZONE:-}" ]] || die "set TPU_ZONE, e.g. us-central2-b (v4), us-west4-a (v5e), us-east5-a (v5p)"
[[ "$TPU_RUN" =~ ^[A-Za-z0-9._-]+$ ]] || die "TPU_RUN=$TPU_RUN: use letters, digits, '.', '_', '-'"
command="$1"
shift
case "$command" in
  create | setup | run | logs | fetch | delete) "$command" "$@" ;;
  *) die "unknown command '$command'; use create, setup, run, logs, fetch or delete" ;;
esac
