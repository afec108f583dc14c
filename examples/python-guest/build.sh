#!/usr/bin/env bash
# Builds the Python guest into target/python-guest/tokenginx_python_guest.wasm.
#
#   bash examples/python-guest/build.sh        (from anywhere; needs python3 >= 3.9 with venv)
#
# componentize-py (pinned below) is installed into target/python-guest/venv on first use.
# The build is skipped when the hash of the app's sources, its wit/oauth.wit, this script and
# the componentize-py version matches the stamp next to the output.
#
# The guest is built against the contract it was written for, `tokenginx:oauth@0.1.1`, kept
# in examples/python-guest/wit/: it proves that a guest built against an older 0.1.x keeps
# loading and passing the endpoint suite on a newer host.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out_dir=$root/target/python-guest
out=$out_dir/tokenginx_python_guest.wasm
stamp=$out.stamp
venv=$out_dir/venv

# What the output depends on. Sorted so the hash does not depend on the directory order.
inputs=("$here"/*.py "$here/build.sh" "$here/wit/oauth.wit")
hash=$({
  echo "componentize-py $COMPONENTIZE_PY_VERSION"
  while IFS= read -r f; do
    printf '%s\n' "${f#"$root"/}"
    sha256sum < "$f"
  done < <(printf '%s\n' "${inputs[@]}" | LC_ALL=C sort)
} | sha256sum | cut -d' ' -f1)

installed() { compgen -G "$venv/lib/python3*/site-packages/componentize_py-$COMPONENTIZE_PY_VERSION.dist-info" >/dev/null; }

if [ -f "$out" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && installed; then
  echo "python guest: up to date ($out, $(du -h "$out" | cut -f1), inputs ${hash:0:12})"
  exit 0
fi

mkdir -p "$out_dir"
if ! installed; then
  python=${PYTHON:-python3}
  echo "python guest: installing componentize-py $COMPONENTIZE_PY_VERSION into ${venv#"$root"/}"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

echo "python guest: componentizing app.py against its wit/oauth.wit (tokenginx:oauth@0.1.1, world guest)"
start=$(date +%s)
rm -f "$stamp"
# componentize-py generates the bindings itself and writes bytecode next to the sources
# while it pre-initializes the app, so it works on a copy under target/.
# VIRTUAL_ENV is unset so an activated venv's site-packages cannot end up in the component.
src=$out_dir/src
rm -rf "$src" && mkdir -p "$src" && cp "$here"/*.py "$src"/
(cd "$src" && env -u VIRTUAL_ENV "$venv/bin/componentize-py" --quiet \
  -d "$here/wit" -w guest componentize app -p "$src" -o "$out.tmp")
mv -f "$out.tmp" "$out"
echo "$hash" > "$stamp"
echo "python guest: built $out ($(du -h "$out" | cut -f1)) in $(( $(date +%s) - start ))s"
