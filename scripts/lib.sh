# Shared set-up for scripts/dev and scripts/test: installs and starts what the tests and the
# development console need, on loopback only. Source it; it defines functions and changes nothing
# until they are called.

AIRLOCK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/airlock/target}
# The AWS SDK's default credential chain ends at the instance metadata service (169.254.169.254);
# tests and the development console only ever talk to 127.0.0.0/8.
export AWS_EC2_METADATA_DISABLED=true
MOTO_VERSION=5.2.5
# The aws CLI that pins the botocore moto's boto3 uses; the EC2 endpoint's tests drive it.
AWSCLI_VERSION=1.46.3

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Stage timing: `stage NAME` ends the previous stage and starts the next; `stage_times` prints how
# long each took (scripts/test calls it on exit, so a failed run shows where its time went).
STAGE_NAME=
STAGE_START=$SECONDS
STAGE_TIMES=()
stage() {
  [ -n "$STAGE_NAME" ] && STAGE_TIMES+=("$(printf '%6ss  %s' $((SECONDS - STAGE_START)) "$STAGE_NAME")")
  STAGE_NAME=$1
  STAGE_START=$SECONDS
  [ -n "$1" ] && say "$1"
  return 0
}
stage_times() {
  stage ""
  printf '%s\n' "stage times (total ${SECONDS}s):" "${STAGE_TIMES[@]}" >&2
}

# Clippy's lints run while the workspace's own crates compile: clippy-driver is rustc plus the lints,
# so one dev build both lints and produces the test binaries. A separate `cargo clippy` would check
# every dependency (the AWS SDK included) a second time. Every dev-profile cargo call of the scripts
# sees the same two variables, so none of them rebuilds what another built.
export RUSTC_WORKSPACE_WRAPPER=clippy-driver
export CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

# Builds everything with the one feature set every script and test uses (workspace, all
# targets), so the AWS SDK is compiled once per profile; other flags would compile it again.
# Extra arguments (--release) are passed on; release builds are compiled by rustc alone, since
# clippy-driver turns MIR optimisations off and benchmarks measure release binaries.
build_all() {
  case " $* " in
    *" --release "*) env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo build --workspace --all-targets --locked "$@" ;;
    *) cargo build --workspace --all-targets --locked "$@" ;;
  esac
}

# apt-get install, once per run, only when something is missing.
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "missing $* and not root: install them with apt-get" >&2
    return 1
  fi
  if [ -z "${AIRLOCK_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    AIRLOCK_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# cargo-deny, built once into ~/.cargo/bin (in a target dir of its own, so the project's is
# left alone).
CARGO_DENY_VERSION=0.20.2
ensure_cargo_deny() {
  if ! cargo deny --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
    say "installing cargo-deny $CARGO_DENY_VERSION (a few minutes, once)"
    CARGO_TARGET_DIR="$HOME/.cache/airlock/cargo-deny-target" \
      cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" >&2
  fi
}

# Checks the dependency graph against deny.toml: licences, bans and sources, then RustSec
# advisories against the copy of the database cargo-deny keeps in ~/.cargo/advisory-dbs, saying
# how old it is. The tests contact nothing but loopback and the package registries, so the
# database is fetched (from GitHub) only when AIRLOCK_FETCH_ADVISORIES=1; with no copy at all
# it says loudly that advisories were not checked.
check_dependencies() {
  ensure_cargo_deny
  cargo deny --locked check licenses bans sources
  if [ "${AIRLOCK_FETCH_ADVISORIES:-0}" = 1 ]; then
    cargo deny --locked check advisories
    return
  fi
  local db
  # No directory at all is the usual case on a new machine: not an error.
  db=$(find "$HOME/.cargo/advisory-dbs" -maxdepth 1 -name 'advisory-db-*' -type d 2>/dev/null | head -1 || true)
  if [ -n "$db" ] && git -C "$db" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    say "RustSec advisories as of $(git -C "$db" log -1 --format=%cs) (AIRLOCK_FETCH_ADVISORIES=1 fetches the newest)"
    cargo deny --offline check advisories
  else
    say "WARNING: RustSec advisories NOT checked: no copy of the database in ~/.cargo/advisory-dbs (AIRLOCK_FETCH_ADVISORIES=1 fetches it from GitHub)"
  fi
}

# The moto server (an EC2/STS-compatible endpoint) in a project-local virtualenv.
ensure_moto() {
  # Outside the checkout, so every clone (CI's fresh one too) reuses one installation; the
  # versions are checked below, and a mismatch reinstalls.
  local venv="${AIRLOCK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/airlock/venv}"
  if [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/aws" ] \
    || ! "$venv/bin/python" -c "import moto,sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    || ! "$venv/bin/aws" --version 2>&1 | grep -q "^aws-cli/$AWSCLI_VERSION "; then
    say "installing moto[server]==$MOTO_VERSION and awscli==$AWSCLI_VERSION into $venv"
    python3 -m venv "$venv" >&2 || { apt_install python3-venv && python3 -m venv "$venv" >&2; }
    "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION" >&2
  fi
  export AIRLOCK_MOTO_SERVER="$venv/bin/moto_server" AIRLOCK_AWS_CLI="$venv/bin/aws" AIRLOCK_PYTHON="$venv/bin/python"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Benchmarks: the key of the account `bench` that start_bench_console adds (moto takes any).
BENCH_KEY_ID=AKIAIOSFODNN7EXAMPLE
BENCH_SECRET=bench-secret-not-real

# Benchmarks: starts the console binary $1 on a free port with its SQLite store and config under
# $2 (further arguments go to `serve`), waits until it answers, logs in as admin and adds the
# account `bench` on moto ($MOTO_URL). Sets AIRLOCK_CONSOLE, AIRLOCK_CONFIG_DIR, CONSOLE_PID and
# BENCH_TOKEN (the admin's bearer token).
start_bench_console() {
  local bin=$1 work=$2 port
  shift 2
  port=$(free_port)
  export AIRLOCK_CONSOLE="http://127.0.0.1:$port" AIRLOCK_CONFIG_DIR="$work/config"
  AIRLOCK_ADMIN_PASSWORD=bench-password-0123 AIRLOCK_LOG=warn "$bin" serve \
    --listen "127.0.0.1:$port" --allow-endpoint 127.0.0.1 --database "sqlite://$work/airlock.db" \
    --master-key-file "$work/master.key" --public-url "$AIRLOCK_CONSOLE" "$@" >"$work/console.out" 2>"$work/console.log" &
  CONSOLE_PID=$!
  for _ in $(seq 1 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('$AIRLOCK_CONSOLE/healthz')" 2>/dev/null && break
    sleep 0.1
  done
  echo bench-password-0123 | "$bin" login --user admin --password-stdin >/dev/null
  echo "$BENCH_SECRET" | "$bin" account add bench --region us-east-1 --endpoint-url "$MOTO_URL" \
    --access-key-id "$BENCH_KEY_ID" --secret-access-key-stdin >/dev/null
  BENCH_TOKEN=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$work/config/login.json")
}

# Starts moto on 127.0.0.1 and waits until it answers; sets MOTO_URL and MOTO_PID.
start_moto() {
  local port log=${1:-/dev/null}
  port=$(free_port)
  "$AIRLOCK_MOTO_SERVER" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  MOTO_PID=$!
  MOTO_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$MOTO_URL/moto-api/')" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "moto did not start on $MOTO_URL (log: $log)" >&2
  return 1
}

# A throw-away PostgreSQL server on 127.0.0.1 (Debian's package), trust auth, stopped by
# stop_postgres; sets AIRLOCK_TEST_POSTGRES to its URL.
start_postgres() {
  if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    say "installing PostgreSQL"
    apt_install postgresql
  fi
  local bin
  bin=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | tail -n 1)")
  PG_DIR=$(mktemp -d /tmp/airlock-pg.XXXXXX)
  local port
  port=$(free_port)
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$PG_DIR"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-h 127.0.0.1 -p $port -k $PG_DIR -c fsync=off" start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
  PG_CTL=("${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data")
  export AIRLOCK_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
}

stop_postgres() {
  if [ -n "${PG_DIR:-}" ]; then
    "${PG_CTL[@]}" stop -m fast >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

# Debian's Chromium, for the web console's browser tests (driven by playwright-core).
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium"
    apt_install chromium
  fi
}
