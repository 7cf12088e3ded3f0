#!/bin/sh
# tests/deps.sh: make sure what the tests use is installed, before they
# run (`make test` and .ci/run call it).
#
# As root on Debian, it installs the missing packages and says which;
# otherwise it stops at once with one line naming them and the command
# that installs them.
set -eu

# Each Debian package the tests use, and a command it brings:
#   mandoc     mandoc     lints the man pages
#   python3    python3    victims
#   gcc        gcc        builds the C victims
#   libc6-dev  -          their headers and libc.a (static victims)
#   make       make       runs this
#   xz-utils   xz         compression tests
#   zstd       zstd       compression tests
#   iproute2   ip         network namespaces of the migration tests
#   curl       curl       the server's HTTP interface
#   passwd     useradd    tests that run as an ordinary user they create
#   bash       bash       victims
#   sqlite3    sqlite3    looks at a database a restored process holds locked
#   util-linux nsenter    lists a namespace's System V IPC objects
#   tmux       tmux       a tmux server moved with its panes' pseudo-terminals
#   bsdutils   script     script(1) moved with its pseudo-terminal
#   redis-server redis-server  moved between hosts with a client connected
#              redis-cli  (its dependency redis-tools) asks it after the move
packages="mandoc python3 gcc libc6-dev make xz-utils zstd iproute2 curl passwd bash sqlite3 util-linux tmux bsdutils redis-server"
commands="mandoc python3 gcc make xz zstd ip curl useradd bash sqlite3 nsenter tmux script redis-server redis-cli"

me=tests/deps.sh

if ! command -v dpkg-query >/dev/null 2>&1; then
	# Not Debian: say which commands are missing.
	missing=""
	for c in $commands; do
		PATH=$PATH:/usr/sbin:/sbin command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
	done
	if [ -n "$missing" ]; then
		echo "$me: missing commands the tests use:$missing: install them with your package manager" >&2
		exit 1
	fi
	exit 0
fi

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "$me: missing Debian packages:$missing: install them as root with: apt-get install --no-install-recommends$missing" >&2
	exit 1
fi

echo "$me: installing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# A package with a daemon (redis-server) starts it from its postinst
# through invoke-rc.d or deb-systemd-invoke; the tests start their own,
# and a daemon left running would hold its port on the machine that runs
# them. Both ask /usr/sbin/policy-rc.d first, and exit 101 there means
# "do not start": nothing runs at all, so there is nothing to stop by its
# pidfile afterwards (which would race with the daemon writing it, and
# leave its port taken meanwhile). One of ours is put there for the
# install and removed after, unless the machine has its own (container
# images often do: it is theirs to keep).
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\n# tests/deps.sh: no daemon starts while it installs\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	trap 'exit 1' HUP INT TERM
fi
# The package lists may be missing (a fresh image) or stale: update them
# when the first try fails.
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends $missing </dev/null; then
	apt-get update -q </dev/null
	apt-get install -y -q --no-install-recommends $missing </dev/null
fi
