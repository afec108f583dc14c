#!/usr/bin/env python3
"""Checks of deploy/monitoring that promtool and a JSON parser do not make.

    monitoring.py DIR    DIR holds alerts.yaml, alerts_test.yaml and grafana-dashboard.json

1. Every metric a PromQL expression or a test series names is one tokenginx-host exposes
   (METRICS below), histograms only through _bucket, _sum and _count; every label in a
   selector is one that metric has, and a value from a fixed set is in that set. A typo
   would otherwise give an alert that never fires and a panel that stays empty.
2. Every label in by (...), without (...), on (...) and ignoring (...) is a known one.
3. Every alert has a test where it fires and one where it stays silent.
4. Every dashboard panel and query uses the ${datasource} variable.
"""

import json
import re
import sys
from pathlib import Path

import yaml

# What the host exposes: name -> (type, {label: allowed values, or None for any}).
ROUTES = {"token", "introspect", "revoke", "metadata", "authorize", "admin", "clients", "sessions", "register", "jwks", "userinfo",
          "live", "ready", "metrics", "not_found"}
ALGORITHMS = {"RS256", "ES256", "EdDSA"}
EXPORTS = {"info", "token", "introspect", "revoke", "metadata"}
METRICS = {
    "tokenginx_token_created_total": ("counter", {}),
    "tokenginx_token_retrieved_total": ("counter", {}),
    "tokenginx_token_revoked_total": ("counter", {}),
    "tokenginx_operation_duration_seconds": (
        "histogram", {"operation": {"get", "get_many", "set", "insert", "delete", "ttl", "charge"}}),
    "tokenginx_rate_limited_total": ("counter", {"client_id": None}),
    "tokenginx_connection_pool_size": ("gauge", {}),
    "tokenginx_connection_pool_idle": ("gauge", {}),
    "tokenginx_http_requests_total": ("counter", {"route": ROUTES, "status": "status"}),
    "tokenginx_http_request_duration_seconds": ("histogram", {"route": ROUTES}),
    "tokenginx_guest_calls_total": ("counter", {"guest": None, "version": None, "export": EXPORTS}),
    "tokenginx_guest_failures_total": ("counter", {
        "guest": None, "version": None, "export": EXPORTS,
        "reason": {"trap", "deadline", "fuel", "busy", "invalid_response"}}),
    "tokenginx_guest_call_duration_seconds": ("histogram", {"export": EXPORTS}),
    "tokenginx_guest_instances_active": ("gauge", {}),
    "tokenginx_guest_instances_limit": ("gauge", {}),
    "tokenginx_store_errors_total": ("counter", {"kind": {"unavailable", "rejected"}}),
    "tokenginx_store_full": ("gauge", {}),
    "tokenginx_address_rate_limited_total": ("counter", {"route": {"authorize"}}),
    "tokenginx_address_budgets": ("gauge", {}),
    "tokenginx_build_info": ("gauge", {"version": None, "wasmtime": None}),
    "tokenginx_guest_info": ("gauge", {"name": None, "version": None, "sha256": None}),
    "tokenginx_guest_reloads_total": ("counter", {"result": {"ok", "refused", "rolled_back"}}),
    "tokenginx_signing_keys": ("gauge", {"algorithm": ALGORITHMS,
                                         "state": {"next", "active", "retired"}}),
    "tokenginx_signing_key_rotation_due_seconds": ("gauge", {"algorithm": ALGORITHMS}),
    # Prometheus's own, per target.
    "up": ("gauge", {}),
}
# Labels Prometheus adds to every series it scrapes from the job.
TARGET_LABELS = {"job", "instance"}
JOB = "tokenginx"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

STRING = r'"(?:[^"\\]|\\.)*"'
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(" + STRING + r")\s*(?:,|$)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
METRIC_NAME = re.compile(r"\btokenginx_[a-zA-Z0-9_]+\b")


def resolve(name):
    """(base metric, its spec, whether `le` is a label) or None for an unknown series name."""
    if name in METRICS:
        kind, labels = METRICS[name]
        return None if kind == "histogram" else (name, labels, False)
    for suffix in HISTOGRAM_SUFFIXES:
        base = name[: -len(suffix)]
        if name.endswith(suffix) and METRICS.get(base, ("",))[0] == "histogram":
            return base, METRICS[base][1], suffix == "_bucket"
    return None


def check_expr(where, expr, errors, strict_job=True):
    """Checks one PromQL expression (or a promtool series) against METRICS."""
    unquoted = re.sub(STRING, '""', expr)
    for name in METRIC_NAME.findall(unquoted):
        if resolve(name) is None:
            hint = " (a histogram: use _bucket, _sum or _count)" if name in METRICS else ""
            errors.append(f"{where}: unknown metric {name}{hint}")
    for name, body in SELECTOR.findall(expr):
        spec = resolve(name)
        if spec is None:
            if not name.startswith("tokenginx_"):
                errors.append(f"{where}: unknown metric {name}")
            continue
        _, labels, has_le = spec
        body = body.strip().rstrip(",")
        matched = MATCHER.findall(body) if body else []
        # One operator outside quotes per matcher: fewer matches means one went unread.
        if len(matched) != len(re.findall(r"=~|!~|!=|=", re.sub(STRING, '""', body))):
            errors.append(f"{where}: cannot read the matchers of {name}{{{body}}}")
        for label, op, quoted in matched:
            value = json.loads(quoted)
            allowed = labels.get(label, "any") if label not in TARGET_LABELS else "any"
            if label == "le" and has_le:
                continue
            if label not in labels and label not in TARGET_LABELS:
                errors.append(f"{where}: {name} has no label {label!r} (it has {sorted(set(labels) | TARGET_LABELS)})")
                continue
            if label == "job" and strict_job and value != JOB:
                errors.append(f'{where}: {name}{{job{op}"{value}"}}: the job is "{JOB}"')
            if allowed == "status":
                ok = (re.fullmatch(r"[1-5][0-9][0-9]", value) if op in ("=", "!=")
                      else re.fullmatch(r"[1-5.|\[\]0-9-]+", value))
                if not ok:
                    errors.append(f'{where}: {name}{{status{op}"{value}"}}: status is a numeric code like "200"')
            elif isinstance(allowed, set):
                words = [value] if op in ("=", "!=") else value.split("|")
                if op in ("=~", "!~") and not all(re.fullmatch(r"[a-z_]+", w) for w in words):
                    continue  # a real regex: nothing to compare word by word
                for w in words:
                    if w not in allowed:
                        errors.append(f"{where}: {name}{{{label}{op}{quoted}}}: {w!r} is not one of {sorted(allowed)}")
    known_labels = TARGET_LABELS | {"le"} | {l for _, ls in METRICS.values() for l in ls}
    for group in GROUPING.findall(unquoted):
        for label in filter(None, (l.strip() for l in group.split(","))):
            if label not in known_labels:
                errors.append(f"{where}: grouping by unknown label {label!r}")


def check_alerts(directory, errors):
    rules = yaml.safe_load((directory / "alerts.yaml").read_text())
    alerts = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            check_expr(f"alerts.yaml: {name}", rule["expr"], errors)
            if "alert" in rule:
                alerts.append(rule["alert"])

    tests = yaml.safe_load((directory / "alerts_test.yaml").read_text())
    fires, silent = set(), set()
    for test in tests["tests"]:
        label = test.get("name", "a test")
        for series in test.get("input_series", []):
            check_expr(f"alerts_test.yaml: {label}", series["series"], errors, strict_job=False)
        for case in test.get("promql_expr_test", []):
            check_expr(f"alerts_test.yaml: {label}", case["expr"], errors, strict_job=False)
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    for alert in alerts:
        if alert not in fires:
            errors.append(f"alerts_test.yaml: no test shows {alert} firing")
        if alert not in silent:
            errors.append(f"alerts_test.yaml: no test shows {alert} silent")
    for alert in (fires | silent) - set(alerts):
        errors.append(f"alerts_test.yaml: tests an alert alerts.yaml does not have: {alert}")
    return len(alerts)


def check_dashboard(directory, errors):
    dashboard = json.loads((directory / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("grafana-dashboard.json: no `datasource` variable of Prometheus data sources")
    count = 0

    def walk(node, where):
        nonlocal count
        if isinstance(node, dict):
            title = node.get("title", where)
            if "datasource" in node and node.get("type") != "dashboard" and node["datasource"].get("type") != "grafana":
                if node["datasource"].get("uid") != "${datasource}":
                    errors.append(f"grafana-dashboard.json: {title}: datasource is not ${{datasource}}")
            if isinstance(node.get("expr"), str):
                count += 1
                check_expr(f"grafana-dashboard.json: {where}", node["expr"], errors)
            for key, value in node.items():
                walk(value, title if key in ("targets", "panels") else where)
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(dashboard.get("panels", []), "panels")
    for name, var in variables.items():
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if var.get("type") == "query":
            count += 1
            check_expr(f"grafana-dashboard.json: variable {name}", query, errors)
            if var.get("datasource", {}).get("uid") != "${datasource}":
                errors.append(f"grafana-dashboard.json: variable {name}: datasource is not ${{datasource}}")
    return count


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = Path(sys.argv[1])
    errors = []
    alerts = check_alerts(directory, errors)
    queries = check_dashboard(directory, errors)
    for e in errors:
        print(f"ERROR {e}")
    if errors:
        sys.exit(1)
    print(f"INFO {alerts} alerts, each tested firing and silent; {queries} dashboard queries; "
          f"every metric and label is one tokenginx-host exposes")


if __name__ == "__main__":
    main()
