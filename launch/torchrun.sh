#!/usr/bin/env bash
# Several GPUs (or CPU processes) on one machine with torchrun: DDP, or DeepSpeed with zero=….
#   launch/torchrun.sh zero=zero2                 # every visible GPU
#   NPROC=2 launch/torchrun.sh zero=zero3 experiment=tiny_smoke
# One run dir for all ranks: ftx picks it on rank 0 (or pass hydra.run.dir=…); only rank 0 writes.
# On CPU the ranks talk over gloo; train.threads=auto (the default) gives each rank cores ÷ NPROC.
set -euo pipefail
GPUS=$("${PYTHON:-python}" -c "import torch; print(torch.cuda.device_count())")
NPROC="${NPROC:-$(( GPUS > 0 ? GPUS : 2 ))}"
exec torchrun --standalone --nproc_per_node "$NPROC" -m ftx train "$@"
