#!/usr/bin/env bash
# Distributed training with torchrun, one process per GPU (gloo on CPU-only machines).
#
#   bash tools/dist_train.sh CONFIG GPUS [tools/train.py ARGS]
#
# Several nodes: run it on each with NNODES, NODE_RANK and MASTER_ADDR set (and the same PORT).
# mmdensenet.cli.launch checks the arguments and runs torchrun.
tools=$(dirname "$0")
PYTHONPATH="$tools/..${PYTHONPATH:+:$PYTHONPATH}" exec python -m mmdensenet.cli.launch "$tools/train.py" "$@"
