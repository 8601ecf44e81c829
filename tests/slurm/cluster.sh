#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the SLURM integration tests (tests/test_slurm.py) and CI.
#
#   tests/slurm/cluster.sh start    install slurm-wlm and munge if missing (apt-get, as root), write the config,
#                                   start munged, slurmctld and slurmd; a no-op if the cluster is already up
#   tests/slurm/cluster.sh status   the daemons and `sinfo`; exit status 0 if the cluster is up, 1 if not
#   tests/slurm/cluster.sh stop     stop exactly the daemons `start` started (their pid files in the state dir)
#
# Slurm 22.05 (Debian 12), no systemd: the daemons run as plain processes with SlurmUser=root. No slurmdbd
# (accounting database): it would need a MariaDB server too, minutes of set-up for CI, and nothing in the workflow
# needs it; the executor plugin polls job states with `squeue` instead of `sacct` (profiles/slurm/config.yaml).
# The node has this machine's CPUs and (a little less than) its memory, from `slurmd -C`. Memory requests are
# enforced (a job's summed PSS above its --mem is killed: OUT_OF_MEMORY), like the cgroups of a real cluster;
# time limits are enforced by slurmctld (TIMEOUT).
#
# Environment: MEC_SLURM_STATE (state dir: config copy, pid files, logs, spool; default /tmp/mec-slurm),
# MEC_SLURM_CONF (default /etc/slurm/slurm.conf, where the client commands look; an existing file that this
# script did not write is never replaced).
set -euo pipefail

STATE=${MEC_SLURM_STATE:-/tmp/mec-slurm}
CONF=${MEC_SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# written by tests/slurm/cluster.sh"
MUNGE_SOCKET=/run/munge/munge.socket.2
MEMORY_FRACTION=90          # % of the machine's memory the node offers to jobs (the rest: OS, daemons, others)
START_TIMEOUT_S=60

die() { echo "cluster.sh: $*" >&2; exit 1; }
note() { echo "cluster.sh: $*"; }

export SLURM_CONF=$CONF

# A pid from a pid file, if that process is alive and runs `name`.
live_pid() {
    local file=$1 name=$2 pid
    [[ -s $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid && -r /proc/$pid/comm ]] || return 1
    [[ $(cat "/proc/$pid/comm") == "$name"* ]] || return 1
    echo "$pid"
}

munge_works() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }
# Without a config file the client commands look for the controller in DNS SRV records, which can take a minute.
ctld_up() { [[ -f $CONF ]] && scontrol ping 2>/dev/null | grep -q "is UP"; }
cluster_up() { ctld_up && sinfo -h -N -o %T 2>/dev/null | grep -qE "idle|mix|alloc"; }

wait_for() {
    local what=$1 check=$2 deadline=$((SECONDS + START_TIMEOUT_S))
    until $check; do
        ((SECONDS < deadline)) || die "$what did not come up within ${START_TIMEOUT_S}s; see $STATE/*.log"
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    for tool in munged slurmctld slurmd sinfo; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; run as root to install slurm-wlm and munge"
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get; install SLURM and munge yourself"
    note "installing slurm-wlm and munge (missing: ${missing[*]})"
    local attempt
    for attempt in 1 2 3; do  # mirrors fail transiently; a failed install is not a bug in this project
        if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurm-wlm munge >"$STATE/apt.log" 2>&1; then
            return 0
        fi
        note "apt-get failed (attempt $attempt of 3; $STATE/apt.log)"
        sleep $((attempt * 10))
    done
    die "could not install slurm-wlm and munge; see $STATE/apt.log"
}

start_munge() {
    if munge_works; then return 0; fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- munged --socket="$MUNGE_SOCKET" --pid-file=/run/munge/munged.pid
    wait_for munged munge_works
    cp /run/munge/munged.pid "$STATE/munged.pid"  # ours to stop
}

write_config() {
    if [[ -e $CONF ]] && ! head -n 1 "$CONF" | grep -qF "$MARK"; then
        die "$CONF exists and was not written by this script; not replacing a real SLURM config"
    fi
    local node host memory
    node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. ... RealMemory=<MB>
    host=$(hostname -s)
    memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    [[ -n $memory ]] || die "cannot read RealMemory from 'slurmd -C': $node"
    node=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$((memory * MEMORY_FRACTION / 100))/" <<<"$node")
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/spool"
    cat >"$STATE/slurm.conf" <<EOF
$MARK start; state in $STATE
ClusterName=mec-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Enforce --mem without cgroups: poll every job's processes each second, sum their PSS, kill above the request.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill,UsePss
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=5
# Finished jobs stay visible to squeue (the status command without accounting) and scontrol for an hour.
MinJobAge=3600
$node State=UNKNOWN NodeAddr=127.0.0.1 NodeHostname=$host
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cp "$STATE/slurm.conf" "$CONF.tmp.$$" && mv "$CONF.tmp.$$" "$CONF"
}

start() {
    mkdir -p "$STATE"
    if cluster_up && live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null; then
        note "already running (state in $STATE)"
        return 0
    fi
    install_packages
    start_munge
    write_config
    live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null || slurmctld
    wait_for slurmctld ctld_up
    live_pid "$STATE/slurmd.pid" slurmd >/dev/null || slurmd
    wait_for "the node" cluster_up
    note "up: $(sinfo -h -N -o '%N %c CPUs %m MB %T')"
}

stop_pid_file() {
    local file=$1 name=$2 pid
    if pid=$(live_pid "$file" "$name"); then
        kill -TERM "$pid"
        for _ in $(seq 1 40); do
            [[ -d /proc/$pid ]] || break
            sleep 0.25
        done
        [[ -d /proc/$pid ]] && kill -KILL "$pid"
        note "stopped $name ($pid)"
    fi
    rm -f "$file"
}

stop() {
    [[ -d $STATE ]] || { note "nothing to stop ($STATE does not exist)"; return 0; }
    stop_pid_file "$STATE/slurmd.pid" slurmd
    stop_pid_file "$STATE/slurmctld.pid" slurmctld
    stop_pid_file "$STATE/munged.pid" munged  # only there if start started munged
    if [[ -e $CONF ]] && head -n 1 "$CONF" | grep -qF "$MARK"; then rm -f "$CONF"; fi
}

status() {
    local up=1 name
    for name in slurmctld slurmd munged; do
        if pid=$(live_pid "$STATE/$name.pid" "$name"); then note "$name running ($pid)"; fi
    done
    if cluster_up; then up=0; sinfo; else note "no cluster answers (SLURM_CONF=$CONF)"; fi
    return $up
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
