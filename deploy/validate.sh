#!/usr/bin/env bash
# Validates everything under deploy/: the Kubernetes manifests, the alerting rules and
# their unit tests, the Grafana dashboard. Exits non-zero at the first failure.
#
#   bash deploy/validate.sh
#
# Installs what it lacks: kubernetes-validate from PyPI, promtool from Debian's
# `prometheus` package (apt-get, so as root). Renders the kustomization when kubectl or
# kustomize is there, and runs `tokenginx-host check-config` on the ConfigMap's config when
# a built binary is there; it skips either quietly otherwise.
set -euo pipefail

DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$DEPLOY")
K8S="$DEPLOY/kubernetes"
MON="$DEPLOY/monitoring"
CHECKS="$DEPLOY/checks"
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest Kubernetes the manifests support (the preStop sleep action is on by default
# from 1.30) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'validate.sh: FAILED: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step "tools"
installed=$(python3 -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null || true)
if [[ "$installed" != "$KUBERNETES_VALIDATE_VERSION" ]]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
if ! command -v promtool >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
echo "kubernetes-validate $(python3 -m kubernetes_validate --version 2>&1 | awk '{print $NF}'), $(promtool --version 2>&1 | head -1)"

# kubernetes-validate knows the built-in kinds only: for a custom resource it prints WARN
# and passes. So it gets every file without a ServiceMonitor, and a WARN fails here (a new
# kind nobody checks); checks/manifests.py checks ServiceMonitors against its own schema.
step "kubernetes-validate --strict (built-in kinds)"
mapfile -t core_files < <(python3 "$CHECKS/manifests.py" files "$K8S")
[[ ${#core_files[@]} -gt 0 ]] || fail "no manifests found in $K8S/kustomization.yaml"
for version in "${KUBERNETES_VERSIONS[@]}"; do
    if ! out=$(python3 -m kubernetes_validate --strict --kubernetes-version "$version" "${core_files[@]}"); then
        echo "$out"
        fail "kubernetes-validate, Kubernetes $version"
    fi
    echo "$out"
    if grep -q '^WARN' <<<"$out"; then
        fail "kubernetes-validate has no schema for a kind above: give it one in checks/"
    fi
done

step "ServiceMonitor schema and cross-references (checks/manifests.py)"
python3 "$CHECKS/manifests.py" check "$K8S" || fail "checks/manifests.py"

step "kustomization renders"
if command -v kubectl >/dev/null; then
    kubectl kustomize "$K8S" >"$work/rendered.yaml" || fail "kubectl kustomize $K8S"
elif command -v kustomize >/dev/null; then
    kustomize build "$K8S" >"$work/rendered.yaml" || fail "kustomize build $K8S"
fi
if [[ -s "$work/rendered.yaml" ]]; then
    echo "rendered: $(grep -c '^kind:' "$work/rendered.yaml") resources ($(grep '^kind:' "$work/rendered.yaml" | awk '{print $2}' | sort | paste -sd' '))"
else
    echo "skipped: neither kubectl nor kustomize is installed"
fi

# The host's own parser is the last word on the config: unknown keys, durations, sizes.
# Every ${VAR} without a default gets a stand-in value.
step "tokenginx-host check-config (the ConfigMap's config.yaml)"
host_bin=$(command -v tokenginx-host || true)
for candidate in "$REPO/target/release/tokenginx-host" "$REPO/target/debug/tokenginx-host"; do
    [[ -z "$host_bin" && -x "$candidate" ]] && host_bin=$candidate
done
if [[ -n "$host_bin" ]]; then
    python3 - "$K8S/configmap.yaml" "$work/config.yaml" "$work/config.env" <<'EOF'
import re, sys, yaml
data = yaml.safe_load(open(sys.argv[1]))["data"]["config.yaml"]
open(sys.argv[2], "w").write(data)
with open(sys.argv[3], "w") as env:
    for var in sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", data))):
        env.write(f"{var}={'0' * 64 if var.endswith('SHA256') else 'stand-in-value-for-' + var}\n")
EOF
    mapfile -t config_env <"$work/config.env"
    env "${config_env[@]}" "$host_bin" check-config --config "$work/config.yaml" \
        || fail "$host_bin check-config refuses the ConfigMap's config.yaml"
else
    echo "skipped: no tokenginx-host binary (on PATH or in target/)"
fi

step "promtool check rules"
promtool check rules "$MON/alerts.yaml" || fail "promtool check rules"

step "promtool test rules"
promtool test rules "$MON/alerts_test.yaml" || fail "promtool test rules"

step "dashboard JSON"
python3 -m json.tool "$MON/grafana-dashboard.json" >/dev/null || fail "grafana-dashboard.json is not JSON"
echo "grafana-dashboard.json parses"

step "metric names, labels, alert test coverage (checks/monitoring.py)"
python3 "$CHECKS/monitoring.py" "$MON" || fail "checks/monitoring.py"

printf '\nvalidate.sh: all checks passed\n'
