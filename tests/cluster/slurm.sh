#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for the workflow's Slurm test.
#   tests/cluster/slurm.sh start   write slurm.conf, start munged, slurmctld and slurmd
#   tests/cluster/slurm.sh stop    stop the daemons
# Needs root and Debian's slurm-wlm and munge (installed by .ci/run). No accounting daemon:
# jobs are followed with squeue, and finished jobs stay listed for MinJobAge seconds.
set -euo pipefail

conf_dir=/etc/slurm
state=/var/spool/slurm-aerialseg
logs=/var/log/slurm-aerialseg

start() {
  mkdir -p "$conf_dir" "$state/ctld" "$state/d" "$logs"
  node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... RealMemory=...
  cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=aerialseg-test
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd.log
SlurmctldDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$logs/jobcomp.log
MinJobAge=600
$node State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 1 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      sinfo
      return 0
    fi
    sleep 1
  done
  echo "Slurm did not come up; see $logs" >&2
  tail -n 20 "$logs"/*.log >&2 || true
  return 1
}

stop() {
  for daemon in slurmd slurmctld; do
    pkill -x "$daemon" || true
  done
  for _ in $(seq 1 10); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
    sleep 1
  done
  pkill -x munged || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
