#!/usr/bin/env bash
# Several GPUs (or CPU processes) on one machine with `accelerate launch`.
#   NPROC=2 launch/accelerate.sh zero=zero3_offload experiment=tiny_smoke
# ftx owns precision (train.precision) and the DeepSpeed config (zero=…), so accelerate is told
# nothing about either: it only starts the ranks. (With --use_deepspeed accelerate would build a
# second DeepSpeed config; with ftx's HF-Trainer path the ZeRO settings come from zero=….)
set -euo pipefail
GPUS=$("${PYTHON:-python}" -c "import torch; print(torch.cuda.device_count())")
NPROC="${NPROC:-$(( GPUS > 0 ? GPUS : 2 ))}"
exec accelerate launch --multi_gpu --num_processes "$NPROC" --num_machines 1 --mixed_precision no \
  --dynamo_backend no --main_process_port "${MASTER_PORT:-29500}" -m ftx train "$@"
