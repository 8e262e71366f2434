#!/usr/bin/env bash
# Debian programs that end-to-end tests drive for real. Installed only when
# missing, and only when we can (root with apt-get); tests that need a program
# that is still missing are skipped with a reason.
set -uo pipefail
need=()
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v irssi >/dev/null 2>&1 || need+=(irssi)
# The web client's tests drive Debian's Chromium through Playwright (no browser download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The web call test runs in a loopback-only network namespace (unshare, ip) and
# reads the server's socket byte counts (ss).
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
{ command -v ip >/dev/null 2>&1 && command -v ss >/dev/null 2>&1; } || need+=(iproute2)
# The PostgreSQL store's tests start a server of their own (initdb, postgres).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
# Several nodes share one chat through Redis; the cluster tests start their own
# redis-server, and put HAProxy in front of the nodes as operators would.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "salas: installing Debian packages: ${need[*]}" >&2
    apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 || \
        echo "salas: could not install ${need[*]}; tests that need them will skip" >&2
else
    echo "salas: missing ${need[*]} (not root); tests that need them will skip" >&2
fi
exit 0
