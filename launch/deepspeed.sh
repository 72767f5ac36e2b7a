#!/usr/bin/env bash
# Several GPUs with the DeepSpeed launcher; with HOSTFILE=… several machines (see hostfile.example).
#   launch/deepspeed.sh zero=zero3                              # every visible GPU on this machine
#   NPROC=2 launch/deepspeed.sh zero=zero3_offload experiment=tiny_smoke
# Several machines, started from one node over ssh (passwordless ssh + pdsh to every host):
#   HOSTFILE=launch/hostfile launch/deepspeed.sh zero=zero3 hydra.run.dir=/shared/runs/exp1
# Several machines without ssh: run on every node with its NODE_RANK and node 0's MASTER_ADDR:
#   HOSTFILE=launch/hostfile NODE_RANK=1 MASTER_ADDR=10.0.0.1 launch/deepspeed.sh zero=zero3 hydra.run.dir=/shared/runs/exp1
# Every node needs the same ftx install and data paths; hydra.run.dir must be on a filesystem all
# nodes share (ftx refuses a multi-node run without it). The ZeRO config is ftx's own (zero=…).
set -euo pipefail
PORT=(--master_port "${MASTER_PORT:-29500}")
if [[ -n "${HOSTFILE:-}" && -n "${NODE_RANK:-}" ]]; then
  exec deepspeed --hostfile "$HOSTFILE" --no_ssh --node_rank "$NODE_RANK" \
    --master_addr "${MASTER_ADDR:?set MASTER_ADDR to node 0}" "${PORT[@]}" --module ftx train "$@"
elif [[ -n "${HOSTFILE:-}" ]]; then
  exec deepspeed --hostfile "$HOSTFILE" ${MASTER_ADDR:+--master_addr "$MASTER_ADDR"} "${PORT[@]}" \
    --module ftx train "$@"
fi
GPUS=$("${PYTHON:-python}" -c "import torch; print(torch.cuda.device_count())")
NPROC="${NPROC:-$(( GPUS > 0 ? GPUS : 2 ))}"
exec deepspeed --num_gpus "$NPROC" "${PORT[@]}" --module ftx train "$@"
