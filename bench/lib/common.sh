# Shared by bench/run and bench/counts (sourced, not run).
#
# Servers are started in their own session (setsid), so each one's process
# group id is the pid we hold, and stopping it reaches its workers without
# ever looking a process up by name. Everything started here is recorded
# and stopped again by the EXIT trap, whatever happens.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
ROOT_DIR=$(cd "$BENCH_DIR/.." && pwd)
# The loopback address every server listens on and every client uses:
# 127.0.0.1 or ::1 (BENCH_HOST). URL_HOST is its form in a URL.
BENCH_HOST=${BENCH_HOST:-127.0.0.1}
case $BENCH_HOST in
  127.0.0.1 | ::1) ;;
  *) echo "BENCH_HOST must be 127.0.0.1 or ::1" >&2; exit 2 ;;
esac
URL_HOST=$BENCH_HOST
[[ $BENCH_HOST != *:* ]] || URL_HOST="[$BENCH_HOST]"
# shellcheck disable=SC2034
CLK_TCK=$(getconf CLK_TCK)
PAGE_KB=$(($(getconf PAGESIZE) / 1024))

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- dependencies ---------------------------------------------------------

# need CMD:PACKAGE... installs (apt-get) the packages whose command is missing.
need() {
  local missing=() spec
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; run as root or install them"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# build_tools DIR: compile the C helpers into DIR.
build_tools() {
  local dir=$1
  cc -O2 -Wall -Wextra -Werror -o "$dir/chaos" "$BENCH_DIR/chaos/chaos.c" "$BENCH_DIR/chaos/common.c"
  cc -O2 -Wall -Wextra -Werror -o "$dir/harsh" "$BENCH_DIR/chaos/harsh.c" "$BENCH_DIR/chaos/common.c"
  cc -O2 -Wall -Wextra -Werror -o "$dir/idle_conns" "$BENCH_DIR/idle/idle_conns.c"
}

# ---- processes ------------------------------------------------------------

TRACKED_GROUPS=()   # process groups of servers (their leader's pid)
TRACKED_PIDS=()     # helpers (clients, strace)

cleanup() {
  local pid
  for pid in "${TRACKED_PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in "${TRACKED_GROUPS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Under set -e, say which command ended the run.
set -E
trap 'log "failed (status $?): ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR

# tree_stat PID: "<processes> <cpu ticks> <rss KiB>" for PID and all its
# descendants. CPU is utime+stime+cutime+cstime (fields 14-17 of
# /proc/PID/stat), so the time of workers that died and were reaped inside
# the tree still counts; RSS is field 24 in pages.
tree_stat() {
  # A process may exit between the glob and the read: cat then fails, harmlessly.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" -v page_kb="$PAGE_KB" '
    {
      # The command name is in parentheses and may hold spaces: split after
      # the last ")".
      p = 0
      while ((q = index(substr($0, p + 1), ")")) > 0) p += q
      pid = $1 + 0
      n = split(substr($0, p + 2), f, " ")
      ppid[pid] = f[2] + 0
      cpu[pid] = f[12] + f[13] + f[14] + f[15]
      rss[pid] = f[22] * page_kb
      seen[pid] = 1
    }
    END {
      if (!(root in seen)) { print "0 0 0"; exit }
      queue[1] = root; head = 1; tail = 1; in_tree[root] = 1
      while (head <= tail) {
        cur = queue[head++]
        for (pid in ppid) if (ppid[pid] == cur && !(pid in in_tree)) { in_tree[pid] = 1; queue[++tail] = pid }
      }
      t = 0; r = 0; k = 0
      for (pid in in_tree) { t += cpu[pid]; r += rss[pid]; k++ }
      printf "%d %d %d\n", k, t, r
    }'
}

# tree_pids PID: PID and its descendants, one per line.
tree_pids() {
  # A process may exit between the glob and the read: cat then fails, harmlessly.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    { p = 0; while ((q = index(substr($0, p + 1), ")")) > 0) p += q
      split(substr($0, p + 2), f, " "); ppid[$1 + 0] = f[2] + 0 }
    END {
      queue[1] = root; head = 1; tail = 1; in_tree[root] = 1
      while (head <= tail) {
        cur = queue[head++]; print cur
        for (pid in ppid) if (ppid[pid] == cur && !(pid in in_tree)) { in_tree[pid] = 1; queue[++tail] = pid }
      }
    }'
}

# tree_pss_kb PID: proportional set size of the tree (shared pages split
# between the processes that map them), from /proc/PID/smaps_rollup.
tree_pss_kb() {
  local total=0 pid v
  for pid in $(tree_pids "$1"); do
    v=$(awk '/^Pss:/ { print $2; exit }' "/proc/$pid/smaps_rollup" 2>/dev/null) || v=0
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# port_in_use PORT: true if any TCP socket (v4 or v6) uses PORT locally.
port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v hex="$hex" 'NR > 1 { split($2, a, ":"); if (a[2] == hex) found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: a loopback port nobody uses, below the ephemeral range so no
# client socket can take it meanwhile.
free_port() {
  local lo hi port i
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 10000))
    ((port < lo || port > hi)) || continue
    port_in_use "$port" || { echo "$port"; return 0; }
  done
  die "no free port found"
}

# start_server LOG CMD...: start CMD in its own session, output to LOG.
# Sets SERVER_PID.
# With SERVER_CPUS set (a taskset list, e.g. 0), the server and every
# process it forks run only on those CPUs.
start_server() {
  local logfile=$1
  shift
  [[ -z ${SERVER_CPUS:-} ]] || set -- taskset -c "$SERVER_CPUS" "$@"
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  SERVER_PID=$!
  TRACKED_GROUPS+=("$SERVER_PID")
}

# CLIENT_WRAP: the prefix of every load client; with CLIENT_CPUS set (e.g.
# 1), the clients run only on those CPUs.
CLIENT_WRAP=()
[[ -z ${CLIENT_CPUS:-} ]] || CLIENT_WRAP=(taskset -c "$CLIENT_CPUS")

# count_events FILE EVENT: lines of the event log with that event.
count_events() {
  [[ -f $1 ]] || { echo 0; return; }
  grep -cE "\"event\": *\"$2\"" "$1" || true
}

# wait_ready PORT [EVENT_LOG WORKERS [DEADLINE_S]]: poll until GET / answers
# 200 and, with an event log, until WORKERS workers have logged `listening`.
# Fails if the server dies or the deadline passes. Polling, not a sleep.
wait_ready() {
  local port=$1 events=${2:-} workers=${3:-0} deadline_s=${4:-20}
  local end=$((SECONDS + deadline_s)) code answered=
  while ((SECONDS < end)); do
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server exited during start-up"; return 1; }
    code=$(curl -gs -o /dev/null -w '%{http_code}' --max-time 1 "http://$URL_HOST:$port/" || true)
    if [[ $code == 200 ]]; then
      [[ -z $events ]] && return 0
      (($(count_events "$events" listening) >= workers)) && return 0
      # A server that answers but never writes the event log: go on after
      # 3 s without it (its recovery figures will say so).
      answered=${answered:-$SECONDS}
      if [[ ! -s $events ]] && ((SECONDS - answered >= 3)); then
        log "no event log at $events: going on without it"
        return 0
      fi
    fi
    sleep 0.05
  done
  log "server not ready on port $port after ${deadline_s}s"
  return 1
}

# stop_server: SIGTERM to the server's leader, wait up to 5 s for its whole
# group and tree to go, then SIGKILL whatever is left.
stop_server() {
  local pid=$SERVER_PID tree p end=$((SECONDS + 5))
  tree=$(tree_pids "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  while ((SECONDS < end)); do
    local alive=0
    for p in $tree; do
      [[ -d /proc/$p ]] && [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && alive=1
    done
    ((alive)) || break
    sleep 0.05
  done
  ((alive)) && log "server $pid still running 5 s after SIGTERM: SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null || true
  for p in $tree; do kill -KILL "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
  local g keep=()
  for g in "${TRACKED_GROUPS[@]}"; do [[ $g == "$pid" ]] || keep+=("$g"); done
  TRACKED_GROUPS=("${keep[@]}")
}

# raise_nofile N: raise this shell's descriptor limit (soft and, as root,
# hard) to at least N, within the kernel's nr_open. Call it directly, not in
# $(...), or only a subshell gets the limit.
raise_nofile() {
  local want=$1 max hard
  local cur
  cur=$(ulimit -Sn)
  if [[ $cur == unlimited ]] || ((cur >= want)); then
    return 0
  fi
  max=$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)
  ((want > max)) && want=$max
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < want)); then
    ulimit -Hn "$want" 2>/dev/null || want=$hard
  fi
  ulimit -Sn "$want" 2>/dev/null || true
}

# machine_json: the machine, as a JSON object.
machine_json() {
  local model cores mem kernel
  model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  cores=$(nproc)
  mem=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
  kernel=$(uname -srm)
  printf '{"cpu": "%s", "cores": %s, "mem_gib": %s, "kernel": "%s"}' "$model" "$cores" "$mem" "$kernel"
}
