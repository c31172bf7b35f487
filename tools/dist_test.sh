#!/usr/bin/env bash
# Distributed testing with torchrun, one process per GPU (gloo on CPU-only machines).
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [tools/test.py ARGS]
#
# Several nodes: run it on each with NNODES, NODE_RANK and MASTER_ADDR set (and the same PORT).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "error: usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [ARGS]" >&2
  exit 2
fi
config=$1
checkpoint=$2
gpus=$3
shift 3

if ! [[ $gpus =~ ^[1-9][0-9]*$ ]]; then
  echo "error: GPUS must be a positive number of processes, got '$gpus'" >&2
  exit 2
fi
if [ ! -f "$config" ]; then
  echo "error: config file not found: $config" >&2
  exit 2
fi
if [[ ! $checkpoint =~ ^https?:// ]] && [ ! -f "$checkpoint" ]; then
  echo "error: checkpoint not found: $checkpoint" >&2
  exit 2
fi

PYTHONPATH="$(dirname "$0")/..${PYTHONPATH:+:$PYTHONPATH}" \
  exec python -m mmdensenet.apis.launch \
  --nnodes="${NNODES:-1}" \
  --node_rank="${NODE_RANK:-0}" \
  --master_addr="${MASTER_ADDR:-127.0.0.1}" \
  --master_port="${PORT:-29500}" \
  --nproc_per_node="$gpus" \
  "$(dirname "$0")/test.py" "$config" "$checkpoint" --launcher pytorch "$@"
