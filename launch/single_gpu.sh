#!/usr/bin/env bash
# One process on one GPU (or on the CPU when there is none): plain `ftx train`.
#   launch/single_gpu.sh experiment=tiny_smoke
#   GPU=1 launch/single_gpu.sh quant=nf4 zero=zero2_offload      # ZeRO-Offload also helps on one GPU
# Overrides go straight to `ftx train`; -m runs a sweep (one run after another on this GPU).
set -euo pipefail
export CUDA_VISIBLE_DEVICES="${GPU:-${CUDA_VISIBLE_DEVICES:-0}}"
exec "${PYTHON:-python}" -m ftx train "$@"
