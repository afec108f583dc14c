#!/usr/bin/env python3
"""Checks of deploy/kubernetes that kubernetes-validate does not make.

    manifests.py files DIR   the kustomization's files that kubernetes-validate can check
                             (every file with no ServiceMonitor in it), one a line
    manifests.py check DIR   the ServiceMonitor against servicemonitor.schema.json, then
                             that the resources agree with each other and with config.yaml

kubernetes-validate knows only the built-in kinds: for a custom resource such as the
ServiceMonitor it prints a WARN and passes. So ServiceMonitors are checked here, strictly,
against a schema written by hand from the Prometheus Operator's CRD.

The cross-checks catch what every schema accepts and the cluster then gets wrong quietly: a
selector that matches no pod, a port name that names nothing, a `${VAR}` no env entry sets
(the pod would exit at start), a grace period shorter than the shutdown it must cover.
"""

import json
import re
import sys
from pathlib import Path

import jsonschema
import yaml

SCHEMAS = {"ServiceMonitor": Path(__file__).with_name("servicemonitor.schema.json")}


def resources(directory):
    """(file, document) for every document of every file the kustomization lists."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        path = directory / name
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def seconds(text):
    """`30s`, `1m30s`, `500ms` as seconds, like the host's config parser."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration")
    return sum(int(n) * units[u] for n, u in parts)


class Checker:
    def __init__(self, directory):
        self.errors = []
        self.docs = list(resources(directory))

    def fail(self, where, message):
        self.errors.append(f"{where}: {message}")

    def only(self, kind):
        found = [(path, doc) for path, doc in self.docs if doc["kind"] == kind]
        if len(found) != 1:
            self.fail("kustomization.yaml", f"expected one {kind}, found {len(found)}")
            return None, None
        return found[0]

    def schemas(self):
        for path, doc in self.docs:
            schema_file = SCHEMAS.get(doc["kind"])
            if schema_file is None:
                continue
            schema = json.loads(schema_file.read_text())
            validator = jsonschema.Draft202012Validator(schema)
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            for e in errors:
                where = ".".join(str(p) for p in e.path) or "(document)"
                self.fail(f"{path.name}: {doc['kind']}/{doc['metadata'].get('name')}", f"{where}: {e.message}")
            if not errors:
                print(f"INFO {path.name} passed for resource {doc['kind'].lower()}/"
                      f"{doc['metadata']['name']} against {schema_file.name} (strict)")

    def cross_references(self):
        dep_file, dep = self.only("Deployment")
        svc_file, svc = self.only("Service")
        pdb_file, pdb = self.only("PodDisruptionBudget")
        cm_file, cm = self.only("ConfigMap")
        sm_file, sm = self.only("ServiceMonitor")
        if None in (dep, svc, pdb, cm, sm):
            return
        pod = dep["spec"]["template"]
        pod_labels = pod["metadata"].get("labels", {})
        (container,) = pod["spec"]["containers"]
        port_names = {p["name"]: p["containerPort"] for p in container.get("ports", [])}

        def selects(where, selector, labels, what):
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                self.fail(where, f"selector {selector} does not select the {what} (labels {labels})")

        selects(f"{dep_file.name}: spec.selector", dep["spec"]["selector"]["matchLabels"], pod_labels, "pod template")
        selects(f"{svc_file.name}: spec.selector", svc["spec"]["selector"], pod_labels, "Deployment's pods")
        selects(f"{pdb_file.name}: spec.selector", pdb["spec"]["selector"]["matchLabels"], pod_labels, "Deployment's pods")
        selects(f"{sm_file.name}: spec.selector", sm["spec"]["selector"].get("matchLabels"),
                svc["metadata"].get("labels", {}), "Service")

        svc_ports = {p.get("name") for p in svc["spec"]["ports"]}
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                self.fail(f"{svc_file.name}: targetPort", f"{target!r} is not a container port name {sorted(port_names)}")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in svc_ports:
                self.fail(f"{sm_file.name}: endpoints.port", f"{ep.get('port')!r} is not a Service port name {sorted(svc_ports)}")
            if "interval" in ep and "scrapeTimeout" in ep and seconds(ep["scrapeTimeout"]) > seconds(ep["interval"]):
                self.fail(f"{sm_file.name}: endpoints.scrapeTimeout", "is longer than the interval (the operator refuses it)")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if port is None:
                self.fail(f"{dep_file.name}: {probe}", "missing (or not an httpGet probe)")
            elif isinstance(port, str) and port not in port_names:
                self.fail(f"{dep_file.name}: {probe}.httpGet.port", f"{port!r} is not a container port name")

        # The config file: where the container reads it, what it expands, what it implies.
        args = container.get("command", []) + container.get("args", [])
        config_path = args[args.index("--config") + 1] if "--config" in args[:-1] else None
        mounted = {}
        volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            for source in volumes.get(mount["name"], {}).get("projected", {}).get("sources", []):
                for kind in ("configMap", "secret"):
                    for item in source.get(kind, {}).get("items", []):
                        mounted[f"{mount['mountPath']}/{item['path']}"] = (kind, source[kind]["name"], item["key"])
        if config_path not in mounted:
            self.fail(f"{dep_file.name}: args", f"--config {config_path} is not a file any volume mounts {sorted(mounted)}")
            return
        kind, name, key = mounted[config_path]
        if (kind, name) != ("configMap", cm["metadata"]["name"]) or key not in cm["data"]:
            self.fail(f"{dep_file.name}: volumes", f"{config_path} comes from {kind} {name} key {key}, not from the ConfigMap")
            return
        config_text = cm["data"][key]
        config = yaml.safe_load(config_text)
        where = f"{cm_file.name}: {key}"

        env = {e["name"]: e for e in container.get("env", [])}
        for var, default in re.findall(r"\$\{([A-Za-z0-9_]+)(:-[^}]*)?\}", config_text):
            if not default and var not in env:
                self.fail(where, f"${{{var}}} has no default and the container sets no {var}: the host would refuse to start")

        config_dir = config_path.rsplit("/", 1)[0]
        for field in ("ca_file", "cert_file", "key_file"):
            file = config.get("tokenginx", {}).get("tls", {}).get(field)
            if file:
                full = file if file.startswith("/") else f"{config_dir}/{file}"
                if full not in mounted:
                    self.fail(where, f"tokenginx.tls.{field} {full} is not a mounted file {sorted(mounted)}")

        server = config.get("server", {})
        if server.get("port", 8080) not in port_names.values():
            self.fail(where, f"server.port {server.get('port', 8080)} is not a container port {port_names}")
        if server.get("host", "127.0.0.1") != "0.0.0.0":
            self.fail(where, "server.host must be 0.0.0.0 in a pod, or no probe or Service reaches it")
        if config.get("metrics", {}).get("enabled", True) is not True:
            self.fail(where, "metrics.enabled is off, but a ServiceMonitor scrapes it")
        # With metrics.port, metrics and health leave the public port: the probes and the
        # ServiceMonitor must follow them there.
        metrics = config.get("metrics", {})
        management_port = metrics.get("port", server.get("port", 8080))
        names = [name for name, number in port_names.items() if number == management_port]
        if not names:
            self.fail(where, f"metrics.port {management_port} is not a container port {port_names}")
        elif "port" in metrics and metrics.get("host", "127.0.0.1") != "0.0.0.0":
            self.fail(where, "metrics.host must be 0.0.0.0 in a pod, or no probe or scrape reaches it")
        else:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port not in names and port != management_port:
                    self.fail(f"{dep_file.name}: {probe}.httpGet.port", f"{port!r} is not where health is served ({names[0]})")
            svc_targets = {p.get("name"): p.get("targetPort") for p in svc["spec"]["ports"]}
            for ep in sm["spec"]["endpoints"]:
                if svc_targets.get(ep.get("port")) not in names + [management_port]:
                    self.fail(f"{sm_file.name}: endpoints.port", f"{ep.get('port')!r} does not lead to metrics.port {management_port}")
        metrics_path = config.get("metrics", {}).get("path", "/metrics")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("path", "/metrics") != metrics_path:
                self.fail(f"{sm_file.name}: endpoints.path", f"{ep.get('path')!r} is not metrics.path {metrics_path!r}")

        shutdown = seconds(server.get("shutdown_timeout", "30s"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        if grace <= pre_stop + shutdown:
            self.fail(f"{dep_file.name}: terminationGracePeriodSeconds",
                      f"{grace} s does not cover the preStop sleep ({pre_stop} s) plus server.shutdown_timeout ({shutdown:g} s)")

        threads = env.get("TOKIO_WORKER_THREADS", {}).get("valueFrom", {}).get("resourceFieldRef")
        if not threads or threads.get("resource") != "limits.cpu":
            self.fail(f"{dep_file.name}: env", "TOKIO_WORKER_THREADS should come from the container's limits.cpu")
        elif "cpu" not in container.get("resources", {}).get("limits", {}):
            self.fail(f"{dep_file.name}: resources.limits", "no cpu limit: TOKIO_WORKER_THREADS would be the node's core count")
        if not self.errors:
            print(f"INFO {len(self.docs)} resources agree with each other and with {key}")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("files", "check"):
        sys.exit(__doc__)
    directory = Path(sys.argv[2])
    if sys.argv[1] == "files":
        by_file = {}
        for path, doc in resources(directory):
            by_file.setdefault(path, set()).add(doc["kind"])
        for path, kinds in by_file.items():
            if not kinds & SCHEMAS.keys():
                print(path)
        return
    checker = Checker(directory)
    checker.schemas()
    checker.cross_references()
    for e in checker.errors:
        print(f"ERROR {e}")
    sys.exit(1 if checker.errors else 0)


if __name__ == "__main__":
    main()
