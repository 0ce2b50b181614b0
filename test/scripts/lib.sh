# shellcheck shell=bash
#
# lib.sh - helpers shared by the test/scripts/*.sh scripts. Source it, do not
# execute it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# The sourcing script must set SCRIPT_NAME (used as the log prefix) first.
#
# Everything here only uses bash, coreutils, /proc and Debian's
# /usr/bin/python3, so it works on a minimal Debian 12 without procps or
# iproute2.

# Debian's tools first: never pick up a pyenv/virtualenv python or openstack.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"
# A pyenv/virtualenv environment must not leak into Debian's python.
unset PYTHONHOME PYTHONPATH VIRTUAL_ENV PYENV_VERSION
PY=/usr/bin/python3
# Everything we talk to is on loopback: never send it through a proxy
# (curl and python-requests both honour these variables).
export no_proxy="127.0.0.1,localhost${no_proxy:+,${no_proxy}}"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,${NO_PROXY}}"

: "${SCRIPT_NAME:=${0##*/}}"

# log MSG... - one progress line on stderr, prefixed with the script name.
log() {
	printf '%s: %s\n' "${SCRIPT_NAME}" "$*" >&2
}

# die MSG... - log an error and exit 1.
die() {
	printf '%s: ERROR: %s\n' "${SCRIPT_NAME}" "$*" >&2
	exit 1
}

# now - seconds since the epoch with microseconds (bash 5 EPOCHREALTIME).
now() {
	printf '%s' "${EPOCHREALTIME/,/.}"
}

# since T0 - seconds elapsed since T0 (from now), one decimal.
since() {
	local t0=$1 t1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }'
}

# step NAME CMD... - run CMD, then log "NAME (1.2s)". On failure log the
# duration and return the command's status.
step() {
	local name=$1 t0 rc=0
	shift
	t0=$(now)
	"$@" || rc=$?
	if [ "$rc" -eq 0 ]; then
		log "${name} ($(since "$t0")s)"
	else
		log "${name} FAILED with status ${rc} ($(since "$t0")s)"
	fi
	return "$rc"
}

# abspath DIR - absolute form of DIR (DIR need not exist).
abspath() {
	case $1 in
	/*) printf '%s' "$1" ;;
	*) printf '%s/%s' "$PWD" "$1" ;;
	esac
}

# check_state_dir DIR - refuse paths the generated configs cannot carry.
check_state_dir() {
	case $1 in
	'') die "STATE_DIR argument is required" ;;
	*[[:space:]]* | *%* | *\"* | *\'* | *\\* | *'$'* | *'`'*)
		die "STATE_DIR must not contain whitespace, quotes, %, \$, \` or backslashes: '$1'"
		;;
	/) die "refusing to use / as STATE_DIR" ;;
	esac
}

# pid_alive PID - true if PID is a live (non-zombie) process.
pid_alive() {
	local pid=$1 stat
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	[ -r "/proc/${pid}/stat" ] || return 1
	stat=$(cat "/proc/${pid}/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# read_pidfile FILE - print the PID stored in FILE, or nothing.
read_pidfile() {
	local pid=''
	if [ -r "$1" ]; then
		read -r pid <"$1" || true
	fi
	case $pid in '' | *[!0-9]*) pid='' ;; esac
	printf '%s' "$pid"
}

# redis_server_pid FILE - the PID stored in FILE if it is a running
# redis-server (not a recycled PID of something else), or nothing.
redis_server_pid() {
	local pid
	pid=$(read_pidfile "$1")
	if [ -n "$pid" ] && pid_alive "$pid" &&
		[ "$(readlink "/proc/${pid}/exe" 2>/dev/null || true)" = "$(readlink -f "$(command -v redis-server)")" ]; then
		printf '%s' "$pid"
	fi
}

# proc_cmdline PID - the command line of PID with NULs turned into spaces.
proc_cmdline() {
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# proc_children PID - PIDs whose parent is PID (one level).
proc_children() {
	local parent=$1 f stat rest ppid pid
	for f in /proc/[0-9]*/stat; do
		stat=$(cat "$f" 2>/dev/null) || continue
		pid=${stat%% *}
		rest=${stat##*) }
		# rest = "STATE PPID ..."
		rest=${rest#* }
		ppid=${rest%% *}
		if [ "$ppid" = "$parent" ]; then
			printf '%s\n' "$pid"
		fi
	done
}

# wait_pid_exit PID SECONDS - wait until PID is gone; false on timeout.
wait_pid_exit() {
	local pid=$1 limit=$2 t0
	t0=$(now)
	while pid_alive "$pid"; do
		if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
			return 1
		fi
		sleep 0.1
	done
	return 0
}

# stop_pid NAME PID SECONDS [EXTRA_PIDS...] - SIGTERM PID, wait up to
# SECONDS, then SIGKILL PID and EXTRA_PIDS (e.g. worker processes).
stop_pid() {
	local name=$1 pid=$2 limit=$3 p
	shift 3
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_pid_exit "$pid" "$limit"; then
		log "${name} (pid ${pid}) did not exit within ${limit}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_pid_exit "$pid" 5 || die "${name} (pid ${pid}) survived SIGKILL"
	fi
	for p in "$@"; do
		if pid_alive "$p"; then
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
}

# port_free PORT - true if 127.0.0.1:PORT can be bound (nobody listens on it
# on 127.0.0.1, 0.0.0.0 or a dual-stack [::]). SO_REUSEADDR is set so that
# TIME_WAIT leftovers do not count, as for redis and uwsgi themselves.
port_free() {
	"$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# free_port - print a TCP port that is free on 127.0.0.1 right now.
free_port() {
	"$PY" - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

# free_ports N - N distinct TCP ports free on 127.0.0.1 right now (all
# bound at once, so they differ), one a line.
free_ports() {
	"$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
}

# port_owner PORT - best-effort description of who listens on PORT.
port_owner() {
	if command -v ss >/dev/null 2>&1; then
		ss -ltnpH "sport = :$1" 2>/dev/null || true
	fi
}

# need_numbers VAR... - die unless each variable VAR holds a whole number.
need_numbers() {
	local v
	for v in "$@"; do
		case ${!v} in '' | *[!0-9]*) die "${v}='${!v}' is not a number" ;; esac
	done
}

# valid_port VALUE - true if VALUE is a TCP port number 1..65535.
valid_port() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	[ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

# write_file_atomic DEST - copy stdin to DEST via a temp file and rename.
write_file_atomic() {
	local dest=$1 tmp
	tmp=$(mktemp "${dest}.XXXXXX")
	cat >"$tmp"
	chmod 0644 "$tmp"
	mv -f "$tmp" "$dest"
}

# take_lock FILE - hold an exclusive flock on FILE for the rest of the
# script (fd 9), so that two concurrent runs on one STATE_DIR serialize.
take_lock() {
	exec 9>"$1"
	if ! flock -w 300 9; then
		die "could not lock $1 within 300s (another run is stuck?)"
	fi
}
