#!/usr/bin/env bash
# Several machines with torchrun: run this same command on every node (node 0's address as MASTER_ADDR).
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 RUN_DIR=/shared/runs/exp1 launch/multinode_torchrun.sh zero=zero3
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 RUN_DIR=/shared/runs/exp1 launch/multinode_torchrun.sh zero=zero3
# RUN_DIR must be one folder on a filesystem every node sees: checkpoints are written from all ranks.
set -euo pipefail
: "${NNODES:?set NNODES}" "${NODE_RANK:?set NODE_RANK}" "${MASTER_ADDR:?set MASTER_ADDR}" "${RUN_DIR:?set RUN_DIR}"
GPUS=$("${PYTHON:-python}" -c "import torch; print(torch.cuda.device_count())")
NPROC="${NPROC:-$(( GPUS > 0 ? GPUS : 1 ))}"
exec torchrun --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC" \
  --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:${MASTER_PORT:-29500}" \
  -m ftx train "hydra.run.dir=$RUN_DIR" "$@"
