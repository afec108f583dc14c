#!/usr/bin/env bash
# Builds what the image ships the way the Dockerfile's build stage does (the host as a
# static musl binary, the default guest), checks the binary is static, then, when podman
# is installed, builds the image from those artifacts (`--build-context artifacts=DIR`, so
# no Rust image is pulled) and smoke-tests it: user 65532, read-only root filesystem,
# /health/ready, a token issued, introspected and revoked, a graceful stop.
#
#   docker/verify-image.sh
#
# Needs rustup, cargo, musl-gcc (apt-get install musl-tools), curl, and the CA bundle at
# /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates).
#
#   CARGO_TARGET_DIR  default target/musl: apart from target/, whose profile it does not share
#   IMAGE             default tokenginx-host:verify
#   PORT              host port the smoke test publishes, default 18080
#   ENGINE            default podman; e.g. "podman --runtime runc"
#   RUN_FLAGS         extra `run` flags, e.g. "--ulimit nofile=20000:20000 --ulimit nproc=20000:20000"
#                     where raising rlimits is not allowed (podman's defaults are higher)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/musl}
IMAGE=${IMAGE:-tokenginx-host:verify}
PORT=${PORT:-18080}
ENGINE=${ENGINE:-podman}
RUN_FLAGS=${RUN_FLAGS:-}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

die() { echo "verify-image: $*" >&2; exit 1; }
command -v musl-gcc >/dev/null || die "musl-gcc not found: apt-get install musl-tools"
[ -f "$CA_BUNDLE" ] || die "$CA_BUNDLE not found: apt-get install ca-certificates"

# The build stage's commands.
target="$(uname -m)-unknown-linux-musl"
rustup target add "$target" wasm32-unknown-unknown
export CARGO_PROFILE_RELEASE_DEBUG=false
cargo build --release --locked --target wasm32-unknown-unknown -p tokenginx-guest
cargo build --release --locked --target "$target" -p tokenginx-host
host="$CARGO_TARGET_DIR/$target/release/tokenginx-host"
guest="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/tokenginx_guest.wasm"

file "$host" | grep -Eq 'statically linked|static-pie linked' || die "not static: $(file "$host")"
"$host" --version
du -h "$host" "$guest"

engine=${ENGINE%% *}
if ! command -v "$engine" >/dev/null; then
  echo "verify-image: $engine not found: the static binary is built and checked, the image is not"
  exit 0
fi

artifacts=$(mktemp -d)
name=tokenginx-verify-$$
cleanup() { $ENGINE rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$artifacts"; }
trap cleanup EXIT
cp "$host" "$guest" "$CA_BUNDLE" "$artifacts/"
$ENGINE build --build-context artifacts="$artifacts" -t "$IMAGE" .
echo "image $IMAGE: $($ENGINE image inspect --format '{{.Size}}' "$IMAGE") bytes"

secret=verify-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
url=http://127.0.0.1:$PORT
# shellcheck disable=SC2086 # RUN_FLAGS is a list of flags
$ENGINE run -d --name "$name" --read-only -p "127.0.0.1:$PORT:8080" \
  -e OAUTH_CLIENT_SECRET="$secret" $RUN_FLAGS "$IMAGE" >/dev/null
for _ in $(seq 100); do
  curl -sf "$url/health/ready" >/dev/null && break
  sleep 0.2
done
curl -sf "$url/health/ready" || { $ENGINE logs "$name"; die "not ready after 20 s"; }
echo

pid=$($ENGINE inspect --format '{{.State.Pid}}' "$name")
ids=$(awk '/^Uid:|^Gid:/ {print $2}' "/proc/$pid/status" | tr '\n' ' ')
[ "$ids" = "65532 65532 " ] || die "runs as uid/gid $ids, not 65532 65532"
echo "runs as uid 65532, gid 65532, read-only root filesystem"

expect() { # what, pattern, curl arguments...
  local what=$1 pattern=$2 body; shift 2
  body=$(curl -s "$@")
  grep -q "$pattern" <<<"$body" || { $ENGINE logs "$name"; die "$what: $body"; }
  echo "$what: $body"
}
token=$(curl -s -u "demo:$secret" -d grant_type=client_credentials "$url/api/v1/oauth/token" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || die "no token issued"
expect introspect '"active":true' -u "demo:$secret" -d "token=$token" "$url/api/v1/oauth/introspect"
expect revoke '^200$' -o /dev/null -w '%{http_code}' -u "demo:$secret" -d "token=$token" "$url/api/v1/oauth/revoke"
expect introspect '"active":false' -u "demo:$secret" -d "token=$token" "$url/api/v1/oauth/introspect"

$ENGINE stop -t 10 "$name" >/dev/null
code=$($ENGINE inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { $ENGINE logs "$name"; die "exit code $code after SIGTERM"; }
echo "stopped on SIGTERM, exit code 0"
echo "verify-image: ok"
