#!/usr/bin/env bash
# A sweep on SLURM through Hydra's submitit launcher: one SLURM job per run of `ftx train -m`.
#   PARTITION=gpu launch/slurm_sweep.sh lora.r=8,16,32 optimizer.lr=1e-4,3e-4
#   GPUS=4 launch/slurm_sweep.sh zero=zero2 lora.r=8,16     # 4 tasks (ranks) per job, one per GPU
#   LAUNCHER=submitit_local launch/slurm_sweep.sh …         # same jobs on this machine (no SLURM)
# Each task of a multi-task job becomes a torch rank (ftx exports RANK/WORLD_SIZE from submitit's
# job environment). Jobs that time out are resubmitted and resume from their newest checkpoint.
set -euo pipefail
LAUNCHER="${LAUNCHER:-submitit_slurm}"
ARGS=(-m "hydra/launcher=$LAUNCHER" "hydra.launcher.tasks_per_node=${GPUS:-1}"
      "hydra.launcher.timeout_min=${TIMEOUT_MIN:-720}" train.resume=if_present)
if [[ "$LAUNCHER" == submitit_slurm ]]; then
  ARGS+=("hydra.launcher.gpus_per_node=${GPUS:-1}" "hydra.launcher.max_num_timeout=${MAX_REQUEUE:-3}"
         ${PARTITION:+"hydra.launcher.partition=$PARTITION"} ${ACCOUNT:+"hydra.launcher.account=$ACCOUNT"})
fi
exec "${PYTHON:-python}" -m ftx train "${ARGS[@]}" "$@"
