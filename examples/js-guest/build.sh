#!/usr/bin/env bash
# Builds the JavaScript guest into target/js-guest/tokenginx_js_guest.wasm.
#
#   bash examples/js-guest/build.sh        (from anywhere; needs Node >= 20 and npm)
#
# componentize-js, jco and preview2-shim, pinned in package.json and package-lock.json, are
# installed with `npm ci` into target/js-guest/ (never into the source tree) on first use and
# whenever the lock changes. (preview2-shim is pinned because componentize-js 0.23.0 imports it
# at run time but declares it only as a dev dependency; 0.26.x does not work, see README.md.) The build is skipped when the hash of the sources, the WIT, the lock and this
# script matches the stamp next to the output.
#
# The guest targets the world `js-guest` of wit/world.wit: tokenginx:oauth@0.2.0's `guest`
# world (wit/deps/oauth/oauth.wit is a copy of the contract).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out_dir=$root/target/js-guest
out=$out_dir/tokenginx_js_guest.wasm
stamp=$out.stamp
bin=$out_dir/node_modules/.bin

# WASI features of the StarlingMonkey engine to leave out (see README.md, "Why these flags"):
# - http, fetch-event: both pull in wasi:http/types and wasi:http/outgoing-handler, which the
#   host does not link: it refuses such a guest at load ("component imports instance
#   `wasi:http/types@0.2.10`, but a matching implementation was not found in the linker").
#   With `http` disabled alone, `fetch-event` still imports wasi:http/types.
# - stdio, random, clocks: not needed for loading (the host links wasi:cli, wasi:random and
#   wasi:clocks), but nothing in the guest uses them: time, randomness and logs come from the
#   contract's clock, random and log imports. Without them the component imports
#   tokenginx:oauth/* and nothing else. (Math.random and crypto.getRandomValues are then
#   deterministic, and console.* writes nowhere: this guest uses neither.)
DISABLE=(http fetch-event stdio random clocks)

# What the output depends on. Sorted so the hash does not depend on the directory order.
inputs=("$here"/src/*.js "$here/build.sh" "$here/package.json" "$here/package-lock.json"
        "$here"/wit/*.wit "$here"/wit/deps/oauth/*.wit)
hash=$({
  echo "node $(node --version)"
  echo "disable ${DISABLE[*]}"
  while IFS= read -r f; do
    printf '%s\n' "${f#"$root"/}"
    sha256sum < "$f"
  done < <(printf '%s\n' "${inputs[@]}" | LC_ALL=C sort)
} | sha256sum | cut -d' ' -f1)

lock_hash=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
installed() { [ -f "$out_dir/node_modules/.installed" ] && [ "$(cat "$out_dir/node_modules/.installed")" = "$lock_hash" ]; }

if [ -f "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && installed; then
  echo "js guest: up to date ($out, $(du -h "$out" | cut -f1), inputs ${hash:0:12})"
  exit 0
fi

mkdir -p "$out_dir"
if ! installed; then
  echo "js guest: installing the pinned componentize-js, jco and preview2-shim into ${out_dir#"$root"/} (npm ci)"
  cp "$here/package.json" "$here/package-lock.json" "$out_dir/"
  (cd "$out_dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" > "$out_dir/node_modules/.installed"
fi

echo "js guest: checking the SHA-256 implementation"
node "$here/src/selftest.js"

echo "js guest: componentizing src/guest.js against wit/world.wit (world js-guest, tokenginx:oauth@0.2.0; --disable ${DISABLE[*]})"
start=$(date +%s)
rm -f "$stamp"
# From the example's directory, with relative paths: the stack traces the guest logs name
# src/guest.js rather than the checkout's absolute path.
(cd "$here" && "$bin/componentize-js" src/guest.js --wit wit --world-name js-guest \
  --disable "${DISABLE[@]}" --out "$out.tmp")

# The host links tokenginx:oauth/* and wasi:* (empty), and refuses anything else; wasi:http
# it does not link at all. Fail here rather than at load.
imports=$("$bin/jco" wit "$out.tmp" | sed -n 's/^ *import \([^;]*\);.*/\1/p')
unexpected=$(printf '%s\n' "$imports" | grep -v -e '^tokenginx:oauth/' -e '^wasi:io/' -e '^wasi:cli/' \
  -e '^wasi:clocks/' -e '^wasi:random/' -e '^wasi:filesystem/' -e '^wasi:sockets/' || true)
if [ -n "$unexpected" ]; then
  echo "js guest: the component imports what the host does not provide:" >&2
  printf '  %s\n' $unexpected >&2
  exit 1
fi

mv -f "$out.tmp" "$out"
echo "$hash" > "$stamp"
echo "js guest: built $out ($(du -h "$out" | cut -f1)) in $(( $(date +%s) - start ))s; imports:"
printf '  %s\n' $imports
