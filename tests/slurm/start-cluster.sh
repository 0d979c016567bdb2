#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests/test_slurm.py (and for trying the README's cluster section):
# munged, MariaDB (loopback only), slurmdbd (the executor plugin follows its jobs with sacct, which needs
# accounting), slurmctld and slurmd. Installs the Debian packages when missing (needs root), writes the
# configuration for this machine's CPUs and memory, and waits until the node is idle.
#
# The pid file of every daemon it starts is listed in $STATE_DIR/started; tests/slurm/stop-cluster.sh stops exactly
# those processes, newest first.
# Daemons that already run are left alone (the script can be run twice).
set -euo pipefail

STATE_DIR="${CENTERFACE_SLURM_STATE:-/var/tmp/centerface-slurm}"
CLUSTER=centerface
PARTITION=debug
DB_PASS=centerface-slurm   # loopback-only database of a throw-away test cluster
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm

say() { echo "start-cluster: $*" >&2; }
running() { pgrep -x "$1" >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || { say "must run as root (installs packages, starts daemons)"; exit 1; }
mkdir -p "$STATE_DIR" "$LOG_DIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /run/munge
touch "$STATE_DIR/started"

# 1. packages ---------------------------------------------------------------------------------------------------
missing=()
for cmd_pkg in munged:munge slurmctld:slurmctld slurmd:slurmd slurmdbd:slurmdbd sbatch:slurm-client \
               mariadbd:mariadb-server; do
    command -v "${cmd_pkg%%:*}" >/dev/null 2>&1 || missing+=("${cmd_pkg#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null
fi

# 2. munge ------------------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key
if ! running munged; then
    runuser -u munge -- /usr/sbin/munged
    echo /run/munge/munged.pid >> "$STATE_DIR/started"
fi

# 3. MariaDB on loopback, with the accounting database's user ----------------------------------------------------
if ! running mariadbd; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    nohup /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --skip-networking=0 \
        --pid-file=/run/mysqld/mysqld.pid >"$LOG_DIR/mariadb.log" 2>&1 &
    echo /run/mysqld/mysqld.pid >> "$STATE_DIR/started"
fi
for _ in $(seq 60); do mariadb -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done
mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# 4. configuration for this machine -----------------------------------------------------------------------------
HOST=$(hostname -s)
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
# slurmd -C prints this machine's NodeName line (CPUs, sockets, cores, threads, RealMemory in MB).
NODE_LINE=$(slurmd -C | head -n 1)
mkdir -p "$CONF_DIR"
cat > "$CONF_DIR/slurm.conf" <<CONF
# Written by tests/slurm/start-cluster.sh: one node, no cgroups.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# sacct shows each job's comment, where the executor plugin writes the Snakemake rule
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
JobCompType=jobcomp/none
# scancel: SIGTERM, then SIGKILL after this many seconds
KillWait=10
MinJobAge=300
$NODE_LINE State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$CONF_DIR/slurmdbd.conf" <<CONF
# Written by tests/slurm/start-cluster.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
LogFile=$LOG_DIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 600 "$CONF_DIR/slurmdbd.conf"

# 5. slurmdbd, the cluster's record, slurmctld, slurmd ---------------------------------------------------------------
if ! running slurmdbd; then
    slurmdbd
    echo /run/slurmdbd.pid >> "$STATE_DIR/started"
fi
for _ in $(seq 60); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
if ! running slurmctld; then
    slurmctld
    echo /run/slurmctld.pid >> "$STATE_DIR/started"
fi
if ! running slurmd; then
    slurmd
    echo /run/slurmd.pid >> "$STATE_DIR/started"
fi

for _ in $(seq 90); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    if [ "$state" = idle ]; then
        say "node $HOST idle in partition $PARTITION ($NODE_LINE)"
        exit 0
    fi
    case "$state" in drain*|down*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;; esac
    sleep 1
done
say "node $HOST did not become idle (state '${state:-?}'); see $LOG_DIR"
exit 1
