#!/usr/bin/env bash
# The project's test command: brings up the local services the tests need, then
# runs the whole workspace's tests (unit tests, the integration binary, doctests).
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- --nocapture  # extra arguments go to `cargo test --workspace`
#   scripts/test.sh -p lienthong-proto
#
# Services (all bound to 127.0.0.1):
#   RabbitMQ   127.0.0.1:5672, guest/guest      always: the event relay's tests
#                                               publish to it, and one restarts it
#                                               with rabbitmqctl stop_app/start_app
#   PostgreSQL 127.0.0.1:5432                   only with LIENTHONG_TEST_POSTGRES=1
#                                               (no test needs it yet)
#
# On a fresh Debian machine run as root, missing services are installed with
# apt-get and started; otherwise the script says exactly what to run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rabbitmq-server, rabbitmq-diagnostics and friends live in /usr/sbin on Debian,
# which a non-login or non-root PATH may not include.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

SERVICE_DEADLINE_SECS=60
APT_UPDATED=0

log() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$1" >&2
    shift
    local line
    for line in "$@"; do printf '       %s\n' "$line" >&2; done
    exit 1
}

# port_open PORT: does something accept TCP connections on 127.0.0.1:PORT?
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

can_apt_install() {
    [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1
}

# apt_install PACKAGE...: install with apt-get (root only), updating the index once.
apt_install() {
    if [[ "$APT_UPDATED" -eq 0 ]]; then
        note "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    note "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# wait_until DESCRIPTION COMMAND...: poll COMMAND every second until it succeeds,
# giving up after SERVICE_DEADLINE_SECS.
wait_until() {
    local what="$1"
    shift
    local deadline=$((SECONDS + SERVICE_DEADLINE_SECS))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
    note "$what is ready"
}

rabbitmq_ready() {
    rabbitmq-diagnostics -q check_port_connectivity && port_open 5672
}

start_rabbitmq() {
    # Debian's rabbitmq-server wrapper only works for root or the rabbitmq user.
    if [[ "$(id -u)" -ne 0 && "$(id -un)" != "rabbitmq" ]]; then
        die "RabbitMQ is installed but not running, and only root can start it." \
            "  sudo RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached" \
            "Then re-run scripts/test.sh."
    fi
    note "starting rabbitmq-server (detached, bound to 127.0.0.1)"
    if ! RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached; then
        die "rabbitmq-server failed to start." \
            "It must be started as root or as the rabbitmq user, e.g.:" \
            "  sudo RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached" \
            "Logs: /var/log/rabbitmq/"
    fi
    if ! wait_until "RabbitMQ" rabbitmq_ready; then
        die "RabbitMQ did not answer on 127.0.0.1:5672 within ${SERVICE_DEADLINE_SECS}s." \
            "Check: rabbitmq-diagnostics status; logs in /var/log/rabbitmq/"
    fi
}

# RabbitMQ on 127.0.0.1:5672 with the default guest/guest account (the event
# relay and the adapters' consumers are tested against a real broker).
ensure_rabbitmq() {
    log "RabbitMQ on 127.0.0.1:5672"
    if port_open 5672; then
        note "already running"
    elif command -v rabbitmq-server >/dev/null 2>&1; then
        start_rabbitmq
    elif can_apt_install; then
        note "rabbitmq-server is not installed; installing it"
        apt_install rabbitmq-server
        # The package's postinst may already have started it.
        if port_open 5672; then
            note "started by the package install"
        else
            start_rabbitmq
        fi
    else
        die "RabbitMQ is not running on 127.0.0.1:5672 and this script cannot install it (needs root and apt-get)." \
            "On Debian/Ubuntu:" \
            "  sudo apt-get update && sudo apt-get install -y rabbitmq-server" \
            "  sudo RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 ERL_EPMD_ADDRESS=127.0.0.1 rabbitmq-server -detached" \
            "Then re-run scripts/test.sh."
    fi
    # One test stops and restarts the broker (rabbitmqctl stop_app/start_app):
    # rabbitmqctl must reach the node, which needs its Erlang cookie.
    if ! rabbitmqctl -q await_startup >/dev/null 2>&1; then
        die "rabbitmqctl cannot reach the RabbitMQ node; the broker-restart test needs it." \
            "Run the tests as root or as the rabbitmq user (who can read the node's Erlang cookie)," \
            "or copy /var/lib/rabbitmq/.erlang.cookie to ~/.erlang.cookie (mode 0400)."
    fi
}

postgres_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432
    else
        port_open 5432
    fi
}

start_postgres() {
    local version
    # Newest installed major version; Debian's package creates its `main` cluster.
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)"
    if [[ -z "$version" ]]; then
        die "PostgreSQL is installed but has no cluster under /etc/postgresql." \
            "Create one: sudo pg_createcluster --start <version> main"
    fi
    if [[ "$(id -u)" -ne 0 && "$(id -un)" != "postgres" ]]; then
        die "PostgreSQL is installed but not running, and only root or postgres can start it." \
            "  sudo pg_ctlcluster --skip-systemctl-redirect $version main start" \
            "Then re-run scripts/test.sh."
    fi
    note "starting cluster $version/main"
    if ! pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
        die "pg_ctlcluster failed to start PostgreSQL $version/main (it needs root or the postgres user)." \
            "  sudo pg_ctlcluster --skip-systemctl-redirect $version main start" \
            "Logs: /var/log/postgresql/"
    fi
    if ! wait_until "PostgreSQL" postgres_ready; then
        die "PostgreSQL did not answer on 127.0.0.1:5432 within ${SERVICE_DEADLINE_SECS}s." \
            "Logs: /var/log/postgresql/"
    fi
}

# PostgreSQL on 127.0.0.1:5432.
ensure_postgres() {
    log "PostgreSQL on 127.0.0.1:5432"
    if port_open 5432; then
        note "already running"
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [[ -d /etc/postgresql ]]; then
        start_postgres
    elif can_apt_install; then
        note "postgresql is not installed; installing it"
        apt_install postgresql
        if port_open 5432; then
            note "started by the package install"
        else
            start_postgres
        fi
    else
        die "PostgreSQL is not running on 127.0.0.1:5432 and this script cannot install it (needs root and apt-get)." \
            "On Debian/Ubuntu:" \
            "  sudo apt-get update && sudo apt-get install -y postgresql" \
            "  sudo pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" \
            "Then re-run scripts/test.sh."
    fi
}

main() {
    if ! command -v cargo >/dev/null 2>&1; then
        die "cargo not found on PATH." \
            "Install Rust: https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)"
    fi

    ensure_rabbitmq
    if [[ "${LIENTHONG_TEST_POSTGRES:-0}" == "1" ]]; then
        ensure_postgres
    fi

    log "cargo test --workspace $*"
    cargo test --workspace "$@"
    log "tests passed"
}

# Run only when executed, so the ensure_* functions can be sourced on their own.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
