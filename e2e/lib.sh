# shellcheck shell=bash disable=SC2034
# e2e/lib.sh — shared settings for e2e/build, e2e/up and e2e/down. Sourced, not run.
#
# Pinned versions live here; the Go modules under e2e/tools/ (go.mod + go.sum) must
# match them (e2e/build --pin rewrites those modules from these values). The etcd
# version is not pinned here: it is the one k8s.io/kubernetes itself requires.
#
# Environment (all optional):
#   HALO_E2E_STATE   state folder of a running cluster   (default /tmp/halo-e2e)
#   HALO_E2E_CACHE   build outputs for this k8s version  (default ~/.cache/halo-e2e/<k8s-version>)
#   ports, see below: HALO_E2E_{ETCD,ETCD_PEER,APISERVER,KCM,SCHEDULER}_PORT

K8S_VERSION=v1.36.3     # k8s.io/kubernetes; staging modules are replaced by v0.<minor>.<patch>
KWOK_VERSION=v0.8.0     # sigs.k8s.io/kwok        (own module e2e/tools/kwok)
HELM_VERSION=v3.21.4    # helm.sh/helm/v3         (own module e2e/tools/helm)

E2E_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$E2E_DIR/.." && pwd)"
TOOLS_DIR="$E2E_DIR/tools"

CACHE_DIR="${HALO_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/halo-e2e/$K8S_VERSION}"
BIN_DIR="$CACHE_DIR/bin"
STAGES_DIR="$CACHE_DIR/stages"

STATE="${HALO_E2E_STATE:-/tmp/halo-e2e}"
PIDS_DIR="$STATE/pids"
LOGS_DIR="$STATE/logs"
PKI_DIR="$STATE/pki"
KUBECONFIG_PATH="$STATE/kubeconfig"

# Everything listens on 127.0.0.1 only.
ETCD_PORT="${HALO_E2E_ETCD_PORT:-23790}"
ETCD_PEER_PORT="${HALO_E2E_ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${HALO_E2E_APISERVER_PORT:-16443}"
KCM_PORT="${HALO_E2E_KCM_PORT:-16444}"
SCHEDULER_PORT="${HALO_E2E_SCHEDULER_PORT:-16445}"

# Order matters: e2e/down stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok halo)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# pid_alive NAME -> 0 if $PIDS_DIR/NAME.pid names a live process. When $PIDS_DIR/NAME.exe
# records the executable, a process running something else (a reused pid, e.g. after a
# reboot left a stale state folder) does not count.
pid_alive() {
  local f="$PIDS_DIR/$1.pid" pid exe
  [[ -f "$f" ]] || return 1
  pid="$(<"$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -f "$PIDS_DIR/$1.exe" ]] || return 0
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 0  # not ours to read: trust the pid
  exe="${exe% (deleted)}"
  [[ "$exe" == "$(<"$PIDS_DIR/$1.exe")" ]]
}

# running_pids -> names of the components whose recorded pid is alive.
running_pids() {
  local f name
  [[ -d "$PIDS_DIR" ]] || return 0
  for f in "$PIDS_DIR"/*.pid; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .pid)"
    if pid_alive "$name"; then echo "$name"; fi
  done
}

# is_component NAME -> 0 if NAME is one of the cluster's own processes (not e.g. moto).
is_component() { [[ " ${COMPONENTS[*]} " == *" $1 "* ]]; }

# state_is_ours -> 0 if $STATE looks like a folder of these scripts (safe to clean up).
state_is_ours() { [[ -f "$STATE/.halo-e2e" || -d "$PIDS_DIR" ]]; }

# start_bg NAME BINARY ARGS... -> runs BINARY in its own session (extra environment: the
# array START_ENV, "K=V" words), pid in $PIDS_DIR/NAME.pid, its executable in NAME.exe,
# output in $LOGS_DIR/NAME.log. Returns once the pid runs BINARY (setsid and env exec in
# place), so NAME.exe is right for pid_alive from the start.
START_ENV=()
start_bg() {
  local name="$1" bin="$2" pid i launcher=()
  shift 2
  bin="$(readlink -f "$bin")"
  mkdir -p "$PIDS_DIR" "$LOGS_DIR"
  if command -v setsid >/dev/null; then launcher+=(setsid); fi
  if ((${#START_ENV[@]})); then launcher+=(env "${START_ENV[@]}"); fi
  "${launcher[@]}" "$bin" "$@" >>"$LOGS_DIR/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDS_DIR/$name.pid"
  echo "$bin" >"$PIDS_DIR/$name.exe"
  for ((i = 0; i < 100; i++)); do
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$bin" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  log "started $name (pid $pid)"
}

# stop_pid NAME [GRACE_SECONDS] -> TERM the recorded pid, wait, then KILL. By pid only, and
# only if pid_alive (so never a reused pid). Returns 1, keeping the pid file, if the process
# outlives KILL.
stop_pid() {
  local name="$1" grace="${2:-15}" f="$PIDS_DIR/$1.pid" pid i
  [[ -f "$f" ]] || return 0
  if ! pid_alive "$name"; then rm -f "$f" "$PIDS_DIR/$name.exe"; return 0; fi
  pid="$(<"$f")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) still runs ${grace}s after TERM: KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then return 1; fi
  fi
  rm -f "$f" "$PIDS_DIR/$name.exe"
}
