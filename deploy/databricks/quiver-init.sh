#!/usr/bin/env bash
# Databricks cluster-scoped init script: install the quiver wheel and start a node on this
# host, a member of the cluster's one quiver cluster. It runs on every node of the cluster
# before Spark starts; a non-zero exit fails the cluster's launch, with this script's output
# in the cluster's init-script logs.
#
# Cluster settings (Advanced options):
#   Environment variables
#     QUIVER_WHEEL=/Volumes/<catalog>/<schema>/<volume>/quiver-<version>-py3-none-manylinux_2_17_x86_64.whl
#     QUIVER_TOKEN={{secrets/<scope>/<key>}}     (a secret: every node's listener requires it,
#                                                and gossip is encrypted with a key made from it)
#     or QUIVER_TOKEN_FILE=<path>                 a file holding it instead (a secret mounted or
#                                                copied there; readable by root only)
#   Init scripts: this file, from a workspace file or a volume.
# Optional:
#   QUIVER_PORT (8815)             the Flight port of every node (TCP; peers spill tasks to it)
#   QUIVER_GOSSIP_PORT (8817)      the membership port of every node (TCP and UDP)
#   QUIVER_HOST_IP                 this host's address for peers (default: its address on
#                                  the route to $DB_DRIVER_IP)
#   QUIVER_WORKERS                 Python workers per node (default: one per core)
#   QUIVER_OBJECT_STORE_MEMORY     bytes of each node's object store
#   QUIVER_PYTHON                  the interpreter Spark's Python workers run
#                                  (/databricks/python3/bin/python)
#   QUIVER_RUN_DIR                 the node's run directory (/tmp/quiver-<uid>: where
#                                  Spark's Python workers of this user look for it)
#   QUIVER_DRIVER_TIMEOUT (120)    seconds a worker waits for the driver's node
#
# The driver (DB_IS_DRIVER=TRUE) starts the first node, gossiping on $DB_DRIVER_IP:8817. A
# worker waits, with backoff, until the driver's node at $DB_DRIVER_IP answers with the
# token, then starts its own, gossiping on its address and joining $DB_DRIVER_IP:8817:
# the nodes form one cluster, and a node whose Python workers are busy spills tasks to
# peers with free ones. The token rests in $RUN_DIR/token (user-only), where Spark's Python
# workers' quiver client finds it. Running the script again on a host whose node serves
# changes nothing.
set -euo pipefail

log() { echo "quiver-init: $(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }
fail() { log "error: $*" >&2; exit 1; }

: "${QUIVER_WHEEL:?set QUIVER_WHEEL to the path of the quiver wheel}"
if [ -z "${QUIVER_TOKEN:-}" ] && [ -n "${QUIVER_TOKEN_FILE:-}" ]; then
  [ -r "$QUIVER_TOKEN_FILE" ] || fail "cannot read QUIVER_TOKEN_FILE=$QUIVER_TOKEN_FILE"
  QUIVER_TOKEN=$(tr -d '[:space:]' < "$QUIVER_TOKEN_FILE")
fi
: "${QUIVER_TOKEN:?set QUIVER_TOKEN (from a secret) or QUIVER_TOKEN_FILE: nodes listen on the network only with a token}"
PY=${QUIVER_PYTHON:-/databricks/python3/bin/python}
PORT=${QUIVER_PORT:-8815}
GOSSIP_PORT=${QUIVER_GOSSIP_PORT:-8817}
RUN_DIR=${QUIVER_RUN_DIR:-/tmp/quiver-$(id -u)}
DRIVER_TIMEOUT=${QUIVER_DRIVER_TIMEOUT:-120}
QUIVER=$(dirname "$PY")/quiver

[ -x "$PY" ] || fail "no Python interpreter at $PY (set QUIVER_PYTHON)"
[ -f "$QUIVER_WHEEL" ] || fail "no wheel at $QUIVER_WHEEL"

# Install, unless this exact version is installed already.
want=$(basename "$QUIVER_WHEEL" | cut -d- -f2)
have=$("$PY" -c 'import quiver; print(quiver.__version__)' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  log "installing $QUIVER_WHEEL into $PY"
  "$PY" -m pip install --quiet --disable-pip-version-check "$QUIVER_WHEEL"
fi
[ -x "$QUIVER" ] || fail "the wheel installed no quiver command at $QUIVER"

mkdir -p "$RUN_DIR"
chmod 700 "$RUN_DIR"
TOKEN_FILE=$RUN_DIR/token
(umask 077 && printf '%s\n' "$QUIVER_TOKEN" > "$TOKEN_FILE")

if "$QUIVER" status --address "grpc+unix://$RUN_DIR/quiver.sock" --token-file "$TOKEN_FILE" >/dev/null 2>&1; then
  log "a node already serves $RUN_DIR; nothing to do"
  exit 0
fi

: "${DB_DRIVER_IP:?Databricks sets DB_DRIVER_IP on every node}"
if [ "${DB_IS_DRIVER:-}" = "TRUE" ]; then
  HOST_IP=${QUIVER_HOST_IP:-$DB_DRIVER_IP}
else
  # This host's address on its route to the driver (a UDP connect sends nothing).
  HOST_IP=${QUIVER_HOST_IP:-$("$PY" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((sys.argv[1], 9)); print(s.getsockname()[0])' "$DB_DRIVER_IP")}
  log "waiting for the driver's node at $DB_DRIVER_IP:$PORT"
  deadline=$((SECONDS + DRIVER_TIMEOUT))
  delay=1
  until "$QUIVER" status --address "grpc://$DB_DRIVER_IP:$PORT" --token-file "$TOKEN_FILE" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "the driver's node at $DB_DRIVER_IP:$PORT did not answer within ${DRIVER_TIMEOUT}s"
    sleep $delay
    delay=$(( delay < 8 ? delay * 2 : 8 ))
  done
  log "the driver's node answers"
fi

args=(start --run-dir "$RUN_DIR" --listen "0.0.0.0:$PORT" --gossip "$HOST_IP:$GOSSIP_PORT"
      --token-file "$TOKEN_FILE" --python "$PY")
[ "${DB_IS_DRIVER:-}" = "TRUE" ] || args+=(--join "$DB_DRIVER_IP:$GOSSIP_PORT")
[ -z "${QUIVER_WORKERS:-}" ] || args+=(--workers "$QUIVER_WORKERS")
[ -z "${QUIVER_OBJECT_STORE_MEMORY:-}" ] || args+=(--object-store-memory "$QUIVER_OBJECT_STORE_MEMORY")
log "starting: $QUIVER ${args[*]}"
"$QUIVER" "${args[@]}"
log "node serving on port $PORT and $RUN_DIR/quiver.sock, gossiping on $HOST_IP:$GOSSIP_PORT; its log: $RUN_DIR/quiver.log"
