#!/usr/bin/env python3
"""Offline checks of deploy/: every kustomization renders, the rendered manifests validate against the
Kubernetes schemas (kubernetes-validate, bundled schemas, strict), the resources agree with each other and
with the gateway configuration they carry, the Grafana dashboard is valid JSON, and every metric it queries
is exported by the gateway: by the metric source when present, and by a live /metrics scrape of the real
binary started with each overlay's switchyard.yaml.

    python scripts/check_deploy.py [--bin PATH/TO/switchyard] [--kubernetes-versions 1.30,1.37]

Each sub-check prints PASS or FAIL with the reasons; the exit status is 1 when any failed.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "dashboards" / "switchyard.json"
METRICS_SOURCE = ROOT / "Sources" / "SwitchyardAdmin" / "Metrics.swift"
# The monitor's families (drift, capture): declared here, exported only when a model configures drift or capture.
# Families a gateway exports only when configured: the monitor's (drift or capture) and the tracer's (tracing).
MONITOR_SOURCES = [ROOT / "Sources" / "SwitchyardAdmin" / name for name in ("DriftEndpoints.swift", "TraceMetrics.swift")]
ALERTS = DEPLOY / "k8s" / "base" / "prometheusrule.yaml"
ALERT_TESTS = DEPLOY / "alerts" / "tests.yaml"
SEVERITIES = {"critical", "warning", "info"}
# Labels Prometheus adds to every scraped series (target labels of a ServiceMonitor scrape).
TARGET_LABELS = {"pod", "namespace", "instance", "job", "service", "container", "endpoint"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


class Report:
    """Collects sub-check outcomes; every failure names what was wrong."""

    def __init__(self):
        self.failed = []

    def result(self, name, problems, detail=""):
        if problems:
            self.failed.append(name)
            print(f"FAIL {name}")
            for problem in problems:
                print(f"     - {problem}")
        else:
            print(f"PASS {name}" + (f" ({detail})" if detail else ""))


def kustomizations():
    return sorted(p.parent for p in K8S.rglob("kustomization.yaml"))


def renderer():
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    return None


def render(directory, command):
    out = subprocess.run(command + [str(directory)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip() or f"exit status {out.returncode}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def referenced_paths(directory):
    """Every local file or directory a kustomization names, for the fallback when nothing can render."""
    k = yaml.safe_load((directory / "kustomization.yaml").read_text())
    paths = list(k.get("resources", []))
    for generator in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        paths += [f.split("=", 1)[-1] for f in generator.get("files", [])] + generator.get("envs", [])
    paths += [p["path"] for p in k.get("patches", []) if "path" in p]
    return [(directory / p) for p in paths]


# MARK: schema validation


def validate_schemas(name, docs, versions, report):
    import kubernetes_validate

    problems = []
    custom = []
    for version in versions:
        for doc in docs:
            what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                if what not in custom:
                    custom.append(what)
            except kubernetes_validate.ValidationError as error:
                path = "/".join(str(p) for p in error.path)
                problems.append(f"{what} (Kubernetes {version}): {path}: {error.message}")
            except Exception as error:  # an unsupported version or a malformed document
                problems.append(f"{what} (Kubernetes {version}): {error}")
    detail = f"{len(docs)} resources against Kubernetes {', '.join(versions)}"
    if custom:
        detail += f"; no built-in schema for {', '.join(custom)}: checked structurally once rendered"
    report.result(f"{name}: schemas", problems, detail)


# MARK: cross-resource consistency


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def port_of(address):
    return int(str(address).rsplit(":", 1)[1])


def gateway_config(docs):
    for doc in docs:
        if doc["kind"] == "ConfigMap" and "switchyard.yaml" in doc.get("data", {}):
            return doc, yaml.safe_load(doc["data"]["switchyard.yaml"]) or {}
    return None, None


def is_etcd(doc):
    return (doc.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/name") == "etcd"


def check_consistency(name, docs, report):
    # The fleet's etcd members are checked on their own (check_etcd); everything else belongs to the gateway.
    config = gateway_config(docs)[1]
    if any(is_etcd(doc) for doc in docs) or (config or {}).get("cluster"):
        check_etcd(name, docs, config or {}, report)
    docs = [doc for doc in docs if not is_etcd(doc)]
    problems = []
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        report.result(f"{name}: consistency", [f"expected one Deployment, found {len(deployments)}"])
        return
    deployment = deployments[0]
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"].get("labels", {})
    spec = pod["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    gateway = containers.get("switchyard")
    if gateway is None:
        report.result(f"{name}: consistency", ["the Deployment has no container named 'switchyard'"])
        return
    ports = {p["name"]: p["containerPort"] for p in gateway.get("ports", [])}

    if not matches(deployment["spec"]["selector"]["matchLabels"], pod_labels):
        problems.append("Deployment selector does not match its pod template labels")

    # The configuration file the pods mount.
    config_map, config = gateway_config(docs)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    if config_map is None:
        problems.append("no ConfigMap carries switchyard.yaml")
    else:
        mounted = [v for v in volumes.values() if v.get("configMap", {}).get("name") == config_map["metadata"]["name"]]
        if not mounted:
            problems.append(f"ConfigMap {config_map['metadata']['name']} is not mounted by the Deployment")
        for mount in gateway.get("volumeMounts", []):
            # The kubelet never updates a subPath mount, so a ConfigMap change would never reach the pod.
            if any(v["name"] == mount["name"] for v in mounted) and mount.get("subPath"):
                problems.append("the configuration is mounted with subPath: ConfigMap updates would not reach it")
        args = gateway.get("args", [])
        if "--config" not in args:
            problems.append("the gateway container does not pass --config")
        listen = config.get("listen", "127.0.0.1:8001")
        if str(listen).startswith("127.") or str(listen).startswith("localhost"):
            problems.append(f"switchyard.yaml listen: '{listen}' is loopback; Services and probes cannot reach it")
        if ports.get("grpc") != port_of(listen):
            problems.append(f"container port 'grpc' ({ports.get('grpc')}) differs from listen: {listen}")
        rest_listen = str(config.get("rest_listen", "127.0.0.1:8000") or "")
        if rest_listen and (rest_listen.startswith("127.") or rest_listen.startswith("localhost")):
            problems.append(f"switchyard.yaml rest_listen: '{rest_listen}' is loopback; the Service cannot reach it")
        if rest_listen and ports.get("http") != port_of(rest_listen):
            problems.append(f"container port 'http' ({ports.get('http')}) differs from rest_listen: {rest_listen}")
        if not rest_listen and "http" in ports:
            problems.append("container port 'http' is declared but rest_listen is off")
        admin = config.get("admin", {}) or {}
        admin_listen = admin.get("listen", "127.0.0.1:8002")
        if ports.get("admin") != port_of(admin_listen):
            problems.append(f"container port 'admin' ({ports.get('admin')}) differs from admin.listen: {admin_listen}")
        drain = int(config.get("drain_seconds", 30))
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
        if grace <= drain:
            problems.append(f"terminationGracePeriodSeconds {grace} must exceed drain_seconds {drain}")
        token_env = [e for e in gateway.get("env", []) if e["name"] == "SWITCHYARD_ADMIN_TOKEN"]
        token_ref = token_env[0].get("valueFrom", {}).get("secretKeyRef") if token_env else None
        if not str(admin_listen).startswith("127.") and not admin.get("token") and not token_ref:
            problems.append("admin.listen is beyond loopback but no token: set SWITCHYARD_ADMIN_TOKEN from a Secret")
        if admin.get("token"):
            problems.append("admin.token is written in the ConfigMap; take it from a Secret instead")
        mount_paths = {m["mountPath"]: m["name"] for m in gateway.get("volumeMounts", [])}
        for key, value in [("model_repository", config.get("model_repository", "models"))]:
            if not any(str(value).startswith(p) for p in mount_paths):
                problems.append(f"switchyard.yaml {key}: {value} is on no mounted volume")

    # Probes: gRPC health on the gRPC port; liveness must outlast a drain.
    for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = gateway.get(probe_name)
        if not probe or "grpc" not in probe:
            problems.append(f"{probe_name}: expected a grpc probe")
        elif probe["grpc"]["port"] != ports.get("grpc"):
            problems.append(f"{probe_name}: probes port {probe['grpc']['port']}, the gRPC port is {ports.get('grpc')}")
    liveness = gateway.get("livenessProbe") or {}
    if liveness and config is not None:
        window = liveness.get("periodSeconds", 10) * liveness.get("failureThreshold", 3)
        if window <= int(config.get("drain_seconds", 30)):
            problems.append(f"livenessProbe fails after {window} s, within drain_seconds: it would cut a drain short")

    # Volumes and security of every container.
    for container in spec.get("initContainers", []) + spec["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problems.append(f"container {container['name']}: volume '{mount['name']}' is not declared")
        sc = container.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"):
            problems.append(f"container {container['name']}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {container['name']}: allowPrivilegeEscalation is not false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"container {container['name']}: capabilities do not drop ALL")
    pod_sc = spec.get("securityContext", {})
    if not pod_sc.get("runAsNonRoot") or not pod_sc.get("runAsUser"):
        problems.append("pod securityContext: runAsNonRoot and a numeric runAsUser are required")
    for claim in [v["persistentVolumeClaim"]["claimName"] for v in volumes.values() if "persistentVolumeClaim" in v]:
        if not any(d["metadata"]["name"] == claim for d in by_kind.get("PersistentVolumeClaim", [])):
            problems.append(f"volume claims '{claim}', which no manifest defines")

    # Services select the pods and name real ports; the admin plane stays inside the cluster.
    services = by_kind.get("Service", [])
    admin_services = []
    for service in services:
        sname = service["metadata"]["name"]
        if not matches(service["spec"].get("selector"), pod_labels) or not service["spec"].get("selector"):
            problems.append(f"Service {sname}: selector does not match the gateway pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and target not in ports:
                problems.append(f"Service {sname}: targetPort '{target}' is not a container port")
            if target in ("admin", ports.get("admin")):
                admin_services.append(service)
                if service["spec"].get("type", "ClusterIP") != "ClusterIP":
                    problems.append(f"Service {sname}: exposes the admin port as {service['spec']['type']}")
    if not admin_services:
        problems.append("no Service exposes the admin port (the ServiceMonitor needs one)")

    # ServiceMonitor (no built-in schema): selects exactly the admin Service, on its port, with the token.
    monitors = by_kind.get("ServiceMonitor", [])
    for monitor in monitors:
        mspec = monitor.get("spec", {})
        selected = [s for s in services if matches(mspec.get("selector", {}).get("matchLabels"), s["metadata"].get("labels", {}))]
        if [s["metadata"]["name"] for s in selected] != [s["metadata"]["name"] for s in admin_services]:
            problems.append(f"ServiceMonitor selects {[s['metadata']['name'] for s in selected]}, expected the admin Service only")
        for endpoint in mspec.get("endpoints", []):
            names = {p.get("name") for s in selected for p in s["spec"]["ports"]}
            if endpoint.get("port") not in names:
                problems.append(f"ServiceMonitor endpoint port '{endpoint.get('port')}' is not a port of the admin Service")
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append(f"ServiceMonitor path {endpoint.get('path')}: the gateway serves /metrics")
            credentials = endpoint.get("authorization", {}).get("credentials", {})
            if token_ref and (credentials.get("name"), credentials.get("key")) != (token_ref["name"], token_ref["key"]):
                problems.append("ServiceMonitor authorization is not the Secret the gateway reads its token from")
    if not monitors:
        problems.append("no ServiceMonitor")

    # Autoscaler, disruption budget and network policy point at these pods.
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) != ("Deployment", deployment["metadata"]["name"]):
            problems.append(f"HorizontalPodAutoscaler targets {ref['kind']}/{ref['name']}")
        if hpa["spec"].get("minReplicas", 1) < 2:
            problems.append("HorizontalPodAutoscaler minReplicas below 2 leaves no replica during a drain")
        if not gateway.get("resources", {}).get("requests", {}).get("cpu"):
            problems.append("CPU autoscaling needs a CPU request on the gateway container")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            problems.append("PodDisruptionBudget does not select the gateway pods")
    for policy in by_kind.get("NetworkPolicy", []):
        if not matches(policy["spec"]["podSelector"].get("matchLabels"), pod_labels):
            problems.append("NetworkPolicy does not select the gateway pods")
        for rule in policy["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                if isinstance(port.get("port"), str) and port["port"] not in ports:
                    problems.append(f"NetworkPolicy names port '{port['port']}', which the container does not have")
            if any(p.get("port") in ("admin", ports.get("admin")) for p in rule.get("ports", [])) and not rule.get("from"):
                problems.append("NetworkPolicy opens the admin port to every source")
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
        if kind not in by_kind:
            problems.append(f"no {kind}")
    problems += peer_admin_problems(gateway, ports, pod_labels, by_kind.get("NetworkPolicy", []), config or {})
    report.result(f"{name}: consistency", problems)


def peer_admin_problems(gateway, ports, pod_labels, policies, config):
    """Fleet mode: replicas forward feedback to each other's admin port, so each must advertise an address its peers
    can reach (the pod IP through the downward API, not admin.listen's 0.0.0.0), and the network policy must let the
    gateway's pods reach each other's admin port. Without a fleet no pod-to-pod admin traffic is allowed."""
    problems = []
    admin_port = ports.get("admin")
    fleet = bool(config.get("cluster"))

    def admits_peers(rule):
        return any(matches(peer.get("podSelector", {}).get("matchLabels"), pod_labels) and not peer.get(
            "namespaceSelector") for peer in rule.get("from", [])) and any(
            p.get("port") in ("admin", admin_port) for p in rule.get("ports", []))

    def reaches_peers(rule):
        return any(matches(peer.get("podSelector", {}).get("matchLabels"), pod_labels)
                   for peer in rule.get("to", [])) and any(
            p.get("port") in ("admin", admin_port) for p in rule.get("ports", []))

    ingress = any(admits_peers(rule) for policy in policies for rule in policy["spec"].get("ingress", []))
    if not fleet:
        if ingress:
            problems.append("NetworkPolicy admits the gateway's own pods to the admin port, which only fleet mode needs")
        return problems
    if not ingress:
        problems.append("fleet mode: no NetworkPolicy admits the gateway's pods to each other's admin port "
                        "(forwarded feedback)")
    for policy in policies:
        if "Egress" in policy["spec"].get("policyTypes", []) and not any(
                reaches_peers(rule) for rule in policy["spec"].get("egress") or []):
            problems.append(f"fleet mode: NetworkPolicy {policy['metadata']['name']} lets no gateway pod reach a "
                            "peer's admin port (forwarded feedback)")
    args = gateway.get("args", [])
    advertised = args[args.index("--advertise-admin") + 1] if "--advertise-admin" in args[:-1] else None
    advertised = advertised or (config.get("cluster") or {}).get("advertise_admin")
    if not advertised:
        problems.append("fleet mode: the gateway advertises no admin address (--advertise-admin or "
                        "cluster.advertise_admin); peers would be sent to admin.listen's wildcard address")
        return problems
    host, _, port = str(advertised).rpartition(":")
    if port != str(admin_port):
        problems.append(f"fleet mode: the advertised admin address {advertised} is not the container's admin port "
                        f"{admin_port}")
    if host in ("0.0.0.0", "::", "[::]", ""):
        problems.append(f"fleet mode: the advertised admin address {advertised} is a wildcard peers cannot reach")
    variable = re.fullmatch(r"\$\((\w+)\)", host)
    if variable:
        env = {e["name"]: e for e in gateway.get("env", [])}
        source = ((env.get(variable.group(1)) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if source != "status.podIP":
            problems.append(f"fleet mode: --advertise-admin uses $({variable.group(1)}), which is not the downward "
                            "API's status.podIP")
    return problems


def check_etcd(name, docs, config, report):
    """Fleet mode: the gateway's etcd endpoints name the members the overlay runs, the members form one cluster
    whose majority survives a voluntary disruption, and the network policies let the gateway (and only it) reach
    them."""
    problems = []
    etcd_docs = [doc for doc in docs if is_etcd(doc)]
    endpoints = ((config.get("cluster") or {}).get("etcd") or {}).get("endpoints") or []
    sets = [d for d in etcd_docs if d["kind"] == "StatefulSet"]
    if not endpoints:
        problems.append("etcd members are deployed but switchyard.yaml has no cluster.etcd.endpoints")
    if not sets:
        # An etcd the operator runs elsewhere: nothing here to hold the endpoints to.
        report.result(f"{name}: etcd", problems, f"external etcd: {', '.join(endpoints)}")
        return
    members = sets[0]
    replicas = members["spec"].get("replicas", 1)
    set_name = members["metadata"]["name"]
    service = members["spec"].get("serviceName")
    pod_labels = members["spec"]["template"]["metadata"].get("labels", {})
    if replicas < 3 or replicas % 2 == 0:
        problems.append(f"StatefulSet {set_name}: {replicas} members; expected an odd number, at least 3")
    if members["spec"].get("podManagementPolicy") != "Parallel":
        problems.append(f"StatefulSet {set_name}: podManagementPolicy must be Parallel (no member is ready alone)")
    names = {f"{set_name}-{index}" for index in range(replicas)}
    container = members["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(container.get("command", []) + container.get("args", []))
    initial = re.search(r"--initial-cluster=(\S+)", args)
    listed = {part.split("=", 1)[0] for part in initial.group(1).split(",")} if initial else set()
    if listed != names:
        problems.append(f"--initial-cluster names {sorted(listed)}, the StatefulSet runs {sorted(names)}")
    for endpoint in endpoints:
        host = re.sub(r"^https?://", "", endpoint).split(":")[0]
        member, _, domain = host.partition(".")
        if member not in names or not (domain == service or domain.startswith(f"{service}.")):
            problems.append(f"cluster.etcd.endpoints: {endpoint} is not a member ({sorted(names)} under {service})")
    headless = [d for d in etcd_docs if d["kind"] == "Service" and d["metadata"]["name"] == service]
    if not headless or headless[0]["spec"].get("clusterIP") != "None":
        problems.append(f"StatefulSet {set_name}: its serviceName {service} is no headless Service")
    elif not headless[0]["spec"].get("publishNotReadyAddresses"):
        problems.append(f"Service {service}: publishNotReadyAddresses must be true (members resolve each other first)")
    quorum = replicas // 2 + 1
    budgets = [d for d in etcd_docs if d["kind"] == "PodDisruptionBudget"]
    if not any(matches(b["spec"]["selector"]["matchLabels"], pod_labels) for b in budgets):
        problems.append("no PodDisruptionBudget selects the etcd members")
    for budget in budgets:
        if budget["spec"].get("minAvailable", 0) < quorum:
            problems.append(f"PodDisruptionBudget {budget['metadata']['name']}: minAvailable below the quorum {quorum}")
    pod_sc = members["spec"]["template"]["spec"].get("securityContext", {})
    if not pod_sc.get("runAsNonRoot") or not pod_sc.get("runAsUser"):
        problems.append(f"StatefulSet {set_name}: runAsNonRoot and a numeric runAsUser are required")
    sc = container.get("securityContext", {})
    if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"StatefulSet {set_name}: readOnlyRootFilesystem and allowPrivilegeEscalation false required")
    # Network: the gateway may leave its pod for the members' client port; the members admit it there.
    client_port = next((p["containerPort"] for p in container.get("ports", []) if p["name"] == "client"), 2379)
    for policy in [d for d in docs if d["kind"] == "NetworkPolicy" and not is_etcd(d)]:
        egress = policy["spec"].get("egress")
        if "Egress" in policy["spec"].get("policyTypes", []) and not any(
            any(matches(peer.get("podSelector", {}).get("matchLabels"), pod_labels) for peer in rule.get("to", []))
            and any(p.get("port") in (client_port, "client") for p in rule.get("ports", []))
            for rule in egress or []
        ):
            problems.append(f"NetworkPolicy {policy['metadata']['name']}: the gateway may not reach etcd's client port")
    for policy in [d for d in etcd_docs if d["kind"] == "NetworkPolicy"]:
        if not any(
            any((peer.get("podSelector", {}).get("matchLabels") or {}).get("app.kubernetes.io/name") == "switchyard"
                for peer in rule.get("from", []))
            for rule in policy["spec"].get("ingress", [])
        ):
            problems.append(f"NetworkPolicy {policy['metadata']['name']}: admits no gateway pod to the members")
    report.result(f"{name}: etcd", problems, f"{replicas} members, quorum {quorum}")


# MARK: dashboard


def dashboard_queries(dashboard):
    """(panel title, expression) for every query, including template variable queries."""
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((panel.get("title", "?"), target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if variable.get("type") == "query" and query:
            out.append((f"variable {variable['name']}", query))
    return out


def metric_names(expr):
    return set(re.findall(r"\bswitchyard_[a-z0-9_]+\b", expr))


def source_families(source):
    """Metric families the gateway's metric renderer declares: {name: type} (the monitor's included)."""
    # Both files must exist: a renamed source would otherwise quietly declare nothing.
    text = source.read_text() + "".join(path.read_text() for path in MONITOR_SOURCES)
    # A family is declared by a call whose first two arguments are its name and type: `out.family(…)`, or a renderer's
    # local helper that declares one family per call (`perArm(…)`, `perPair(…)`).
    return dict(re.findall(r'\(\s*"(switchyard_[a-z0-9_]+)",\s*"(counter|gauge|histogram|summary|untyped)"', text))


def monitor_families():
    """The families only a gateway with drift, capture or tracing configured exports."""
    text = "".join(path.read_text() for path in MONITOR_SOURCES)
    return set(re.findall(r'\(\s*"(switchyard_[a-z0-9_]+)",\s*"(?:counter|gauge|histogram|summary|untyped)"', text))


def family_of(name, families):
    """The family a sample name belongs to, per the exposition format's suffixes."""
    if name in families:
        return name
    for suffix, types in (("_bucket", {"histogram"}), ("_sum", {"histogram", "summary"}), ("_count", {"histogram", "summary"})):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and families.get(base) in types:
            return base
    return None


def check_dashboard_json(report):
    problems = []
    try:
        dashboard = json.loads(DASHBOARD.read_text())
    except (OSError, json.JSONDecodeError) as error:
        report.result("dashboard: valid JSON", [f"{DASHBOARD.relative_to(ROOT)}: {error}"])
        return None
    queries = dashboard_queries(dashboard)
    if not queries:
        problems.append("the dashboard has no Prometheus queries")
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    for title, expr in queries:
        if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
            problems.append(f"panel '{title}': unbalanced brackets in {expr}")
        if not metric_names(expr) and "vector(" not in expr:
            problems.append(f"panel '{title}': the query references no switchyard metric")
    report.result("dashboard: valid JSON", problems, f"{len(queries)} queries")
    return dashboard


def check_dashboard_against_source(dashboard, source, report):
    if not source.exists():
        report.result(
            "dashboard: metrics declared by the gateway source",
            [f"{source} does not exist (the admin plane is not in this tree)"],
        )
        return
    families = source_families(source)
    problems = []
    for title, expr in dashboard_queries(dashboard):
        for name in sorted(metric_names(expr)):
            if family_of(name, families) is None:
                problems.append(f"panel '{title}': {name} is not a metric the gateway declares")
    report.result("dashboard: metrics declared by the gateway source", problems, f"{len(families)} families declared")


def parse_exposition(text):
    """({family: type}, {sample name: [label dicts]}) of a Prometheus text exposition."""
    families, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families[name] = kind.strip()
        elif line and not line.startswith("#"):
            match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
            if not match:
                raise ValueError(f"malformed sample line: {line}")
            labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
            samples.setdefault(match.group(1), []).append(labels)
    return families, samples


def labels_in(expr):
    """Label names an expression matches on or groups by."""
    names = set()
    for body in re.findall(r"\{([^}]*)\}", expr):
        names |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!=|!~|=)", body))
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        names |= {n.strip() for n in clause.split(",") if n.strip()}
    return names


def check_dashboard_live(dashboard, families, samples, config_name, report, what="dashboard", queries=None):
    problems = []
    optional = monitor_families() - set(families)
    skipped = set()
    for title, expr in dashboard_queries(dashboard) if queries is None else queries:
        where = f"panel '{title}'" if queries is None else title
        referenced = metric_names(expr)
        known_labels = set(TARGET_LABELS) | {"le", "quantile"}
        # Without drift or capture in this configuration the monitor's families are absent: not checked live.
        skipped |= {n for n in referenced if n in optional}
        referenced -= optional
        for name in sorted(referenced):
            family = family_of(name, families)
            if family is None:
                problems.append(f"{where}: {name} is not in the gateway's /metrics")
                continue
            for labels in samples.get(name, []):
                known_labels |= set(labels)
        # A family without samples (no bandit route, no call yet) cannot tell its labels: skip those.
        if referenced and all(samples.get(n) for n in referenced):
            for label in sorted(labels_in(expr) - known_labels - PROMQL_WORDS):
                problems.append(f"{where}: label '{label}' is on none of {sorted(referenced)}")
    detail = f"{len(families)} families, {sum(len(v) for v in samples.values())} samples"
    if skipped:
        detail += f"; not exported without drift, capture or tracing configured: {', '.join(sorted(skipped))}"
    report.result(f"{what}: metrics in a live /metrics scrape ({config_name})", problems, detail)


# MARK: alerts


def alert_rules():
    """(title, expr) of every alert in the PrometheusRule, and the document."""
    doc = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in (doc.get("spec") or {}).get("groups", []) for rule in group.get("rules", [])]
    return [(f"alert {rule.get('alert', '?')}", rule.get("expr", "")) for rule in rules], doc


def check_alerts(source, report):
    """The PrometheusRule's shape, its metrics against the gateway source, and promtool's check and unit tests."""
    try:
        queries, doc = alert_rules()
    except (OSError, yaml.YAMLError) as error:
        report.result("alerts: PrometheusRule", [f"{ALERTS.relative_to(ROOT)}: {error}"])
        return None
    problems = []
    if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") != "PrometheusRule":
        problems.append("expected apiVersion monitoring.coreos.com/v1, kind PrometheusRule")
    rules = [rule for group in (doc.get("spec") or {}).get("groups", []) for rule in group.get("rules", [])]
    if not rules:
        problems.append("no rules")
    families = source_families(source) if source.exists() else {}
    for rule in rules:
        name = rule.get("alert")
        if not name:
            problems.append(f"a rule without an alert name: {rule}")
            continue
        if not re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))):
            problems.append(f"alert {name}: 'for' should be a duration like 5m, got {rule.get('for')!r}")
        if (rule.get("labels") or {}).get("severity") not in SEVERITIES:
            problems.append(f"alert {name}: labels.severity should be one of {sorted(SEVERITIES)}")
        for key in ("summary", "description"):
            if not (rule.get("annotations") or {}).get(key):
                problems.append(f"alert {name}: annotations.{key} is missing")
        for metric in sorted(metric_names(rule.get("expr", ""))):
            if families and family_of(metric, families) is None:
                problems.append(f"alert {name}: {metric} is not a metric the gateway declares")
    report.result("alerts: PrometheusRule", problems, f"{len(rules)} alerts")

    promtool = shutil.which("promtool")
    if promtool is None:
        report.result("alerts: promtool", ["promtool is not installed; run scripts/bootstrap.sh --test"])
        return queries
    with tempfile.TemporaryDirectory(prefix="switchyard-alerts-") as scratch:
        (Path(scratch) / "rules.yaml").write_text(yaml.safe_dump(doc["spec"], sort_keys=False))
        shutil.copy(ALERT_TESTS, Path(scratch) / "tests.yaml")
        outcome = []
        for command in (["check", "rules", "rules.yaml"], ["test", "rules", "tests.yaml"]):
            run = subprocess.run([promtool, *command], cwd=scratch, capture_output=True, text=True)
            if run.returncode != 0:
                outcome.append(f"promtool {' '.join(command)}:\n{(run.stdout + run.stderr).strip()}")
        report.result("alerts: promtool check rules and test rules", outcome, str(ALERT_TESTS.relative_to(ROOT)))
    return queries


# MARK: live gateway


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, token=None, timeout=2):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode()


def send_traffic(grpc_port):
    """A few calls with sticky keys so that canary, shadow and sink metrics carry samples."""
    try:
        import numpy as np
        import tritonclient.grpc as grpcclient
    except ImportError:
        return "tritonclient is not installed: no traffic sent"
    pixels = np.asarray(json.loads((ROOT / "models/digits/samples.json").read_text())["pixels"][:2], dtype=np.float32)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    for i in range(40):
        inp = grpcclient.InferInput("pixels", list(pixels.shape), "FP32")
        inp.set_data_from_numpy(pixels)
        client.infer("digits", [inp], headers={"x-user-id": f"user-{i}"}, request_id=f"check-{i}")
    client.close()
    return "40 calls sent"


def generation(admin_port, token):
    """switchyard_route_generation from /metrics, or None."""
    _, text = http_get(f"http://127.0.0.1:{admin_port}/metrics", token)
    match = re.search(r"^switchyard_route_generation (\d+)", text, re.M)
    return int(match.group(1)) if match else None


def wait_for_generation(admin_port, token, before, seconds):
    after = before
    deadline = time.monotonic() + seconds
    while after == before and time.monotonic() < deadline:
        time.sleep(0.2)
        after = generation(admin_port, token)
    return after


def mount_config(directory, config, revision):
    """Lays the file out as a ConfigMap volume does, and updates it the way the kubelet does: the data in
    a new directory, the `..data` symlink swapped atomically, the file itself a symlink through `..data`."""
    directory.mkdir(exist_ok=True)
    data = directory / f"..revision_{revision}"
    data.mkdir()
    (data / "switchyard.yaml").write_text(yaml.safe_dump(config))
    (directory / "..data_tmp").symlink_to(data.name)
    os.replace(directory / "..data_tmp", directory / "..data")
    link = directory / "switchyard.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/switchyard.yaml")
    for old in directory.glob("..revision_*"):
        if old != data:
            shutil.rmtree(old)
    return link


def supports_admin(binary):
    out = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True)
    return "--admin-listen" in out.stdout + out.stderr


def start_etcd(scratch):
    """A one-member etcd (Debian's etcd-server) on free loopback ports for a fleet configuration's live run:
    (process, endpoint), or (None, reason)."""
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(etcd, os.X_OK):
        return None, "etcd is not installed (apt-get install etcd-server; scripts/bootstrap.sh --test)"
    client, peer = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [etcd, "--name", "check", "--data-dir", f"{scratch}/etcd", "--listen-client-urls", client,
         "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"check={peer}"],
        stdout=open(f"{scratch}/etcd.log", "w"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(client + "/health", timeout=1) as response:
                if b"true" in response.read():
                    return process, client
        except OSError:
            time.sleep(0.1)
    process.kill()
    return None, f"etcd did not become healthy: {Path(scratch, 'etcd.log').read_text()[-500:]}"


def run_gateway(binary, config_name, config, dashboard, report, alerts=None):
    name = f"live gateway with the {config_name} switchyard.yaml"
    with tempfile.TemporaryDirectory(prefix="switchyard-deploy-check-") as scratch:
        etcd = None
        if config.get("cluster"):
            # Fleet mode: the members' names resolve only in the cluster; a local member stands in for them.
            etcd, endpoint = start_etcd(scratch)
            if etcd is None:
                report.result(name, [endpoint])
                return
            cluster = dict(config["cluster"])
            cluster["etcd"] = dict(cluster.get("etcd") or {}, endpoints=[endpoint])
            config = dict(config, cluster=cluster)
        try:
            run_configured_gateway(binary, name, scratch, config, config_name, dashboard, report, alerts)
        finally:
            if etcd is not None:
                etcd.send_signal(signal.SIGTERM)
                etcd.wait(timeout=20)


def cluster_connected(admin_port, token, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, text = http_get(f"http://127.0.0.1:{admin_port}/metrics", token)
        match = re.search(r"^switchyard_cluster_connected (\S+)$", text, re.MULTILINE)
        if match and float(match.group(1)) == 1:
            return True
        time.sleep(0.2)
    return False


def run_configured_gateway(binary, name, scratch, config, config_name, dashboard, report, alerts):
    grpc_port, admin_port = free_port(), free_port()
    # The pod's paths and wildcard addresses become the test machine's: scratch directories and loopback.
    config = dict(config)
    config["listen"] = f"127.0.0.1:{grpc_port}"
    config["model_repository"] = str(ROOT / "models")
    if (config.get("sink") or {}).get("directory"):
        config["sink"] = dict(config["sink"], directory=f"{scratch}/comparisons")
    admin = dict(config.get("admin") or {})
    for key in ("audit_log", "state_file"):
        if admin.get(key):
            admin[key] = f"{scratch}/{Path(admin[key]).name}"
    config["admin"] = admin
    config_file = mount_config(Path(scratch) / "config", config, 1)
    token = secrets.token_hex(16)
    log = open(Path(scratch) / "gateway.log", "w+")
    process = subprocess.Popen(
        # REST off: the checks cover the gRPC and admin ports, and a machine's port 8000 may be taken.
        [binary, "serve", "--config", str(config_file), "--admin-listen", f"127.0.0.1:{admin_port}",
         "--rest-listen", ""],
        env=dict(os.environ, SWITCHYARD_ADMIN_TOKEN=token),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    problems = []
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _ = http_get(f"http://127.0.0.1:{admin_port}/readyz", token)
                ready = status == 200
                if ready:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.3)
        if not ready:
            log.seek(0)
            tail = log.read()[-2000:]
            report.result(name, [f"the gateway did not become ready (exit status {process.poll()}):\n{tail}"])
            return
        traffic = send_traffic(grpc_port)
        time.sleep(0.5)  # shadow jobs complete on idle capacity after their primaries answer
        try:
            http_get(f"http://127.0.0.1:{admin_port}/metrics", "wrong-token")
            problems.append("/metrics accepted a wrong bearer token")
        except urllib.error.HTTPError as error:
            if error.code != 401:
                problems.append(f"/metrics with a wrong token answered {error.code}, expected 401")
        status, text = http_get(f"http://127.0.0.1:{admin_port}/metrics", token)
        families, samples = parse_exposition(text)
        # The operator's reloads (deploy/README.md): SIGHUP re-reads the file; with admin.watch_config a
        # ConfigMap update (the kubelet's symlink swap) is picked up without a signal.
        notes = [traffic, "/metrics scraped"]
        if config.get("cluster"):
            # Fleet mode: routes change through etcd, not the file; the replica must be connected to it.
            if cluster_connected(admin_port, token, 10):
                notes.append("connected to etcd (switchyard_cluster_connected 1)")
            else:
                problems.append("fleet mode: switchyard_cluster_connected never became 1 with etcd running")
        else:
            before = generation(admin_port, token)
            process.send_signal(signal.SIGHUP)
            after = wait_for_generation(admin_port, token, before, 10)
            if after is None or before is None or after <= before:
                problems.append(f"SIGHUP did not advance the route generation ({before} → {after})")
            notes.append(f"SIGHUP reload {before} → {after}")
        if admin.get("watch_config") and not config.get("cluster"):
            before = after
            mount_config(Path(scratch) / "config", dict(config, routes=[]), 2)
            after = wait_for_generation(admin_port, token, before, 5)
            if after is None or before is None or after <= before:
                problems.append(
                    "admin.watch_config is set, but the gateway did not reload routes within 5 s of a "
                    f"ConfigMap-style update of its file ({before} → {after}): this build does not watch "
                    "its configuration file"
                )
            notes.append(f"file update picked up {before} → {after}")
        report.result(name, problems, ", ".join(notes))
        check_dashboard_live(dashboard, families, samples, config_name, report)
        if alerts:
            check_dashboard_live(None, families, samples, config_name, report, what="alerts", queries=alerts)
    finally:
        process.send_signal(signal.SIGTERM)
        drain = int(config.get("drain_seconds", 30))
        try:
            code = process.wait(timeout=drain + 15)
            report.result(f"{name}: SIGTERM drain", [] if code == 0 else [f"exit status {code}, expected 0"])
        except subprocess.TimeoutExpired:
            process.kill()
            report.result(f"{name}: SIGTERM drain", [f"still running {drain + 15} s after SIGTERM"])
        log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.environ.get("SWITCHYARD_BIN"), help="the switchyard binary under test")
    parser.add_argument(
        "--metrics-source", type=Path, default=METRICS_SOURCE, help="the Swift file declaring the metric families"
    )
    parser.add_argument("--kubernetes-versions", default="1.30,1.37", help="schema versions, comma-separated")
    args = parser.parse_args()
    report = Report()
    versions = [v.strip() for v in args.kubernetes_versions.split(",") if v.strip()]

    command = renderer()
    rendered = {}
    for directory in kustomizations():
        name = str(directory.relative_to(ROOT))
        if command is None:
            # Without a renderer: every referenced path exists, and each resource file validates on its own.
            paths = referenced_paths(directory)
            missing = [str(p.relative_to(ROOT)) for p in paths if not p.exists()]
            report.result(f"{name}: references", [f"references missing {m}" for m in missing])
            docs = []
            for path in paths:
                if path.is_file() and path.name != "switchyard.yaml" and "patch" not in path.name:
                    docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
            validate_schemas(f"{name} (files, unrendered)", docs, versions, report)
            print(f"SKIP {name}: consistency (neither kubectl nor kustomize is on PATH to render the kustomization)")
            continue
        try:
            docs = render(directory, command)
        except RuntimeError as error:
            report.result(f"{name}: render", [str(error)])
            continue
        report.result(f"{name}: render", [], f"{len(docs)} resources, {' '.join(command)}")
        validate_schemas(name, docs, versions, report)
        check_consistency(name, docs, report)
        rendered[name] = docs

    dashboard = check_dashboard_json(report)
    if dashboard is not None:
        check_dashboard_against_source(dashboard, args.metrics_source, report)
    alerts = check_alerts(args.metrics_source, report)

    # Live: each distinct gateway configuration the overlays ship.
    configs = {}
    sources = {name: gateway_config(docs)[1] for name, docs in rendered.items()}
    if command is None:
        sources = {
            str(d.relative_to(ROOT)): yaml.safe_load((d / "switchyard.yaml").read_text())
            for d in kustomizations()
            if (d / "switchyard.yaml").exists()
        }
    for name, config in sources.items():
        if config is not None and json.dumps(config, sort_keys=True) not in {json.dumps(c, sort_keys=True) for c in configs.values()}:
            configs[name] = config
    if dashboard is not None:
        if not args.bin or not os.access(args.bin, os.X_OK):
            report.result("live gateway", [f"no switchyard binary to test (--bin or SWITCHYARD_BIN; got {args.bin!r})"])
        elif not supports_admin(args.bin):
            report.result(
                "live gateway",
                [
                    f"{args.bin} has no --admin-listen flag: this build has no admin plane (/metrics), so the "
                    "dashboard cannot be checked against a live scrape; build a tree with Sources/SwitchyardAdmin"
                ],
            )
        else:
            for name, config in configs.items():
                run_gateway(args.bin, name, config, dashboard, report, alerts)

    if report.failed:
        print(f"check-deploy: {len(report.failed)} check(s) failed: {', '.join(report.failed)}")
        return 1
    print("check-deploy: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
