#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for the test-suite's SLURM tests.
#
# Installs Debian's slurm-wlm and munge when they are missing, writes a minimal slurm.conf with
# one node (this machine) in one default partition, starts munged, slurmctld and slurmd, and
# waits until sinfo shows the node idle. Needs root. Running it again while the cluster is up
# changes nothing, so CI can call it before every test run.
set -euo pipefail

SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
PARTITION=${HARNESS_SLURM_PARTITION:-debug}
WAIT_SECONDS=${HARNESS_SLURM_WAIT_SECONDS:-90}
LOG_DIR=/var/log/slurm

log() { echo "start-slurm: $*" >&2; }

node_state() {
    sinfo --noheader --partition="$PARTITION" --format=%t 2>/dev/null | head -n 1 | tr -d '*'
}

if [[ "$(node_state)" == idle || "$(node_state)" == mix || "$(node_state)" == alloc ]]; then
    log "cluster already running: partition $PARTITION is $(node_state)"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    log "error: starting slurmctld and slurmd needs root; run this script as root"
    exit 1
fi

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

# 2. Munge, the authentication service slurmctld and slurmd share.
if ! munge --no-input 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 1 20); do
        munge --no-input 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
fi

# 3. slurm.conf: this machine as the only node, with the CPU layout slurmd detects and a memory
# below physical so the node never fails its registration check.
host=$(hostname --short)
mkdir -p "$(dirname "$SLURM_CONF")" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
if [[ ! -f "$SLURM_CONF" ]] || grep -q '^# written by start-slurm.sh' "$SLURM_CONF"; then
    detected=$(slurmd -C | head -n 1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$detected")
    layout=$(grep -o 'Boards=[0-9]* SocketsPerBoard=[0-9]* CoresPerSocket=[0-9]* ThreadsPerCore=[0-9]*' <<<"$detected" || true)
    memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    cat >"$SLURM_CONF" <<CONF
# written by start-slurm.sh: a single-node test cluster
ClusterName=harness
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobRequeue=1
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=10
MinJobAge=300
NodeName=$host CPUs=$cpus $layout RealMemory=$memory_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    log "wrote $SLURM_CONF ($cpus CPUs, $memory_mb MB)"
fi

# 4. The daemons. Each forks into the background by itself.
if ! scontrol ping 2>/dev/null | grep -q UP; then
    log "starting slurmctld"
    slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
    log "starting slurmd"
    slurmd
fi

# 5. Wait for the node. A node left down or drained by an earlier run is returned to service.
for _ in $(seq 1 "$WAIT_SECONDS"); do
    state=$(node_state)
    case "$state" in
        idle|mix|alloc)
            log "cluster ready: partition $PARTITION on $host is $state"
            exit 0 ;;
        down|drain|drng|fail)
            scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
log "error: node $host did not become idle within $WAIT_SECONDS s (state: ${state:-unknown}); see $LOG_DIR"
sinfo >&2 || true
exit 1
