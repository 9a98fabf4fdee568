#!/usr/bin/env bash
# The project's test command: brings up the local services the tests need, then
# runs the whole workspace's tests (unit tests, the integration binaries,
# doctests) with --no-fail-fast, under an overall time limit.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -- --nocapture  # extra arguments go to `cargo test --workspace`
#   scripts/test.sh -p lienthong-proto
#
# Services (all bound to 127.0.0.1):
#   RabbitMQ   127.0.0.1:5672, guest/guest      always: the tests publish to the
#                                               machine's broker (never stopped)
#   RabbitMQ   127.0.0.1:5673, guest/guest      always: the tests' own node,
#              node lienthong-test@localhost    which the broker-restart test
#                                               stops and starts (rabbitmqctl -n),
#                                               data in /var/tmp/lienthong-test-rabbitmq
#   promtool                                    checks docker/prometheus: the
#                                               scrape configuration and the
#                                               alerting rules' unit tests
#   Python     target/python-venv               the adapter conformance kit's
#                                               reference adapter (grpcio, from
#                                               adapters/python/requirements.txt);
#                                               LIENTHONG_TEST_PYTHON names it
#   PostgreSQL 127.0.0.1:5432                   always: the store tests run on
#              database test, user postgres     it as on SQLite, each in a schema
#                                               of its own (dropped after);
#                                               LIENTHONG_TEST_POSTGRES_URL names
#                                               another database
#
# LIENTHONG_TEST_TIMEOUT_SECS (default 2700) bounds the whole cargo test run.
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
    exit "${DIE_STATUS:-1}"
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
}

# The tests' own RabbitMQ node, beside the machine's: the broker-restart test
# stops and starts it, so no other test and no other user of the machine's
# broker is cut off. Its own name, ports, configuration and data directory.
TEST_NODE="lienthong-test@localhost"
TEST_NODE_PORT=5673
TEST_NODE_DIR="/var/tmp/lienthong-test-rabbitmq"

test_node_ready() {
    timeout 10 rabbitmqctl -n "$TEST_NODE" -q await_startup && port_open "$TEST_NODE_PORT"
}

start_test_node() {
    if [[ "$(id -u)" -ne 0 && "$(id -un)" != "rabbitmq" ]]; then
        die "the tests' own RabbitMQ node $TEST_NODE is not running (or rabbitmqctl cannot reach it), and only root or the rabbitmq user can start and control it." \
            "Run scripts/test.sh as root (e.g. sudo scripts/test.sh): it starts the node in $TEST_NODE_DIR."
    fi
    note "starting it (detached; data and log in $TEST_NODE_DIR)"
    mkdir -p "$TEST_NODE_DIR/mnesia" "$TEST_NODE_DIR/log"
    echo '[].' >"$TEST_NODE_DIR/enabled_plugins"
    # A configuration of its own: the machine's may name the machine's port.
    printf 'listeners.tcp.local = 127.0.0.1:%s\n' "$TEST_NODE_PORT" >"$TEST_NODE_DIR/rabbitmq.conf"
    printf '%s\n' 'ERL_EPMD_ADDRESS=127.0.0.1' \
        'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"' \
        >"$TEST_NODE_DIR/rabbitmq-env.conf"
    if [[ "$(id -u)" -eq 0 ]]; then
        chown -R rabbitmq:rabbitmq "$TEST_NODE_DIR"
    fi
    if ! (cd /tmp && RABBITMQ_NODENAME="$TEST_NODE" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$TEST_NODE_PORT" \
        RABBITMQ_DIST_PORT=$((TEST_NODE_PORT + 20000)) \
        ERL_EPMD_ADDRESS=127.0.0.1 \
        RABBITMQ_CONF_ENV_FILE="$TEST_NODE_DIR/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$TEST_NODE_DIR/rabbitmq.conf" \
        RABBITMQ_ADVANCED_CONFIG_FILE="$TEST_NODE_DIR/advanced.config" \
        RABBITMQ_MNESIA_BASE="$TEST_NODE_DIR/mnesia" \
        RABBITMQ_LOG_BASE="$TEST_NODE_DIR/log" \
        RABBITMQ_PID_FILE="$TEST_NODE_DIR/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$TEST_NODE_DIR/enabled_plugins" \
        rabbitmq-server -detached); then
        die "the tests' own RabbitMQ node did not start." "Log: $TEST_NODE_DIR/log/$TEST_NODE.log"
    fi
    if ! wait_until "the tests' own node" test_node_ready; then
        die "the tests' own RabbitMQ node did not answer on 127.0.0.1:$TEST_NODE_PORT within ${SERVICE_DEADLINE_SECS}s." \
            "Log: $TEST_NODE_DIR/log/$TEST_NODE.log"
    fi
}

# Makes sure the tests' own node runs (after ensure_rabbitmq: it needs the
# broker's programs and epmd) and tells the tests where it is.
ensure_test_node() {
    log "the tests' own RabbitMQ node $TEST_NODE on 127.0.0.1:$TEST_NODE_PORT"
    if port_open "$TEST_NODE_PORT" && test_node_ready >/dev/null 2>&1; then
        note "already running"
    elif timeout 10 rabbitmqctl -n "$TEST_NODE" -q ping >/dev/null 2>&1; then
        # The node runs with RabbitMQ stopped inside it: an earlier run was cut
        # short between the broker-restart test's stop_app and start_app.
        note "running with its RabbitMQ application stopped; rabbitmqctl -n $TEST_NODE start_app"
        if ! timeout 60 rabbitmqctl -n "$TEST_NODE" -q start_app ||
            ! wait_until "the tests' own node" test_node_ready; then
            die "the tests' own RabbitMQ node runs but its RabbitMQ application did not start." \
                "Log: $TEST_NODE_DIR/log/$TEST_NODE.log" \
                "To start it afresh: rabbitmqctl -n $TEST_NODE stop; then re-run scripts/test.sh."
        fi
    else
        start_test_node
    fi
    # The broker-restart test stops and starts it with rabbitmqctl -n, which
    # needs the node's Erlang cookie (root and the rabbitmq user have it).
    if ! rabbitmqctl -n "$TEST_NODE" -q status >/dev/null 2>&1; then
        die "rabbitmqctl cannot reach $TEST_NODE; the broker-restart test needs it." \
            "Run the tests as root or as the rabbitmq user (who can read the node's Erlang cookie)."
    fi
    export LIENTHONG_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$TEST_NODE_PORT/%2f"
    export LIENTHONG_TEST_RABBITMQ_NODE="$TEST_NODE"
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

# The database the store tests use: LIENTHONG_TEST_POSTGRES_URL, by default
# database `test` as user `postgres` over TCP (trust, or the password in the
# URL). Created when missing, by whichever way in works: TCP as postgres, or
# the postgres system user (peer) when run as root.
ensure_test_database() {
    export LIENTHONG_TEST_POSTGRES_URL="${LIENTHONG_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
    if ! command -v psql >/dev/null 2>&1; then
        note "psql not found: the tests will connect to $LIENTHONG_TEST_POSTGRES_URL as given"
        return 0
    fi
    if psql "$LIENTHONG_TEST_POSTGRES_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
        note "database reachable at $LIENTHONG_TEST_POSTGRES_URL"
        return 0
    fi
    if [[ "$LIENTHONG_TEST_POSTGRES_URL" == "postgres://postgres@127.0.0.1:5432/test" ]]; then
        if psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'CREATE DATABASE test' >/dev/null 2>&1 \
            || { [[ "$(id -u)" -eq 0 ]] && runuser -u postgres -- createdb test >/dev/null 2>&1; }; then
            note "created database test"
        fi
        if psql "$LIENTHONG_TEST_POSTGRES_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
    fi
    die "cannot connect to PostgreSQL at $LIENTHONG_TEST_POSTGRES_URL." \
        "Give the tests a database they may create schemas in, e.g. (as root):" \
        "  runuser -u postgres -- createdb test" \
        "  runuser -u postgres -- psql -c \"ALTER ROLE postgres PASSWORD 'postgres'\"" \
        "  LIENTHONG_TEST_POSTGRES_URL=postgres://postgres:postgres@127.0.0.1:5432/test scripts/test.sh"
}

# run_tests ARGS...: cargo test --workspace --no-fail-fast ARGS under the
# overall limit (LIENTHONG_TEST_TIMEOUT_SECS, 45 minutes by default).
run_tests() {
    local limit="${LIENTHONG_TEST_TIMEOUT_SECS:-2700}"
    if [[ ! "$limit" =~ ^[1-9][0-9]*$ ]]; then
        die "LIENTHONG_TEST_TIMEOUT_SECS must be a whole number of seconds, not '$limit'."
    fi
    log "cargo test --workspace --no-fail-fast${*:+ $*} (at most ${limit}s)"
    # timeout runs cargo in a process group of its own, which a Ctrl-C at the
    # terminal or a TERM sent to this script's group does not reach: run it in
    # the background and pass those signals on, so the tests never outlive us.
    local start=$SECONDS rc=0 pid interrupted=""
    timeout --kill-after=30 "$limit" cargo test --workspace --no-fail-fast "$@" &
    pid=$!
    trap 'interrupted=INT; kill -INT "$pid" 2>/dev/null || true' INT
    trap 'interrupted=TERM; kill -TERM "$pid" 2>/dev/null || true' TERM
    wait "$pid" || rc=$?
    # A trapped signal ends `wait` early: wait again until timeout has exited.
    while kill -0 "$pid" 2>/dev/null; do
        rc=0
        wait "$pid" || rc=$?
    done
    trap - INT TERM
    if [[ "$interrupted" == INT ]]; then
        DIE_STATUS=130 die "interrupted (SIGINT); the tests were stopped."
    elif [[ "$interrupted" == TERM ]]; then
        DIE_STATUS=143 die "terminated (SIGTERM); the tests were stopped."
    elif [[ "$rc" -eq 124 ]] || [[ "$rc" -eq 137 && $((SECONDS - start)) -ge "$limit" ]]; then
        DIE_STATUS=124 die "the tests did not finish within ${limit}s (LIENTHONG_TEST_TIMEOUT_SECS); a test hangs." \
            "Re-run with a larger LIENTHONG_TEST_TIMEOUT_SECS, or find the test still running above."
    elif [[ "$rc" -ne 0 ]]; then
        die "tests failed (cargo test exited $rc); the failures are listed above."
    fi
}

# ensure_promtool: promtool on PATH (Debian's prometheus package ships it).
ensure_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        return
    fi
    if can_apt_install; then
        log "installing promtool (Debian package prometheus)"
        apt_install prometheus
        # Only promtool is wanted: the package's own servers, where an init
        # system started them, are stopped and not started at boot.
        if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
            note "stopping and disabling the package's prometheus services (only promtool is used)"
            systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
        fi
        return
    fi
    die "promtool not found: the alerting rules in docker/prometheus are tested with it." \
        "Install it: sudo apt-get install prometheus (or put promtool from prometheus.io on PATH)."
}

# ensure_python_grpc: a virtual environment with the reference adapter's
# packages (adapters/python/requirements.txt, from PyPI), made once and
# remade when the requirements change; its interpreter is
# LIENTHONG_TEST_PYTHON.
ensure_python_grpc() {
    local venv=target/python-venv req=adapters/python/requirements.txt
    if ! command -v python3 >/dev/null 2>&1; then
        if can_apt_install; then
            log "installing python3 (the conformance kit's reference adapter)"
            apt_install python3 python3-venv
        else
            die "python3 not found: the adapter conformance kit is tested against a Python adapter." \
                "Install it: sudo apt-get install python3 python3-venv"
        fi
    fi
    if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$req" "$venv/requirements.txt"; then
        log "python packages for the reference adapter into $venv ($req)"
        rm -rf "$venv"
        if ! python3 -m venv "$venv" 2>/dev/null; then
            if can_apt_install; then
                apt_install python3-venv
                python3 -m venv "$venv"
            else
                die "python3 -m venv failed: install python3-venv (sudo apt-get install python3-venv)."
            fi
        fi
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" \
            || die "pip could not install $req (PyPI must be reachable)."
        cp "$req" "$venv/requirements.txt"
    fi
    export LIENTHONG_TEST_PYTHON="$PWD/$venv/bin/python"
}

# check_alerts: the scrape configuration is valid and every alerting rule's
# unit test passes.
check_alerts() {
    log "promtool check config docker/prometheus/prometheus.yml"
    promtool check config docker/prometheus/prometheus.yml >/dev/null \
        || die "docker/prometheus/prometheus.yml is not a valid configuration (promtool said why above)."
    log "promtool test rules docker/prometheus/alerts_test.yml"
    (cd docker/prometheus && promtool test rules alerts_test.yml) \
        || die "the alerting rules' tests failed (docker/prometheus/alerts_test.yml; promtool said which above)."
}

main() {
    if ! command -v cargo >/dev/null 2>&1; then
        die "cargo not found on PATH." \
            "Install Rust: https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)"
    fi

    ensure_rabbitmq
    ensure_test_node
    ensure_postgres
    ensure_test_database
    ensure_python_grpc
    # The alerting rules with the whole suite (not for a chosen part of it).
    if [[ $# -eq 0 ]]; then
        ensure_promtool
        check_alerts
    fi
    run_tests "$@"
    log "tests passed"
}

# Run only when executed, so the ensure_* functions can be sourced on their own.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
