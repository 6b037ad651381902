#!/usr/bin/env python3
"""Static cross-checks of deploy/ that no single tool does (run by deploy/check.sh).

- every YAML file parses, and the dashboard is valid JSON with unique panel ids;
- compose.yaml: build contexts, Dockerfiles and targets exist; every bind-mounted host path
  exists; every container path named in a command or environment value that lies under a bind
  mount exists on the host side (config files, the Grafana home dashboard);
- the Grafana dashboard provider's path is a mounted folder holding the dashboard;
- prometheus.yml scrapes compose services on the ports their image stages EXPOSE;
- every orderflow_* metric named in the alerts, their tests and the dashboard is one the code
  exports (crates/telemetry/src/metrics.rs is the source of truth).

Prints what it checked; exits 1 listing every problem.
"""

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
problems: list[str] = []


# Made on the machine, never committed: `orderflow certs --out deploy/nats/certs` (git-ignored).
GENERATED = [DEPLOY / "nats" / "certs"]


def generated(path: Path) -> bool:
    """Whether `path` is (under) a directory of generated files that may be absent here."""
    return any(path == g or g in path.parents for g in GENERATED)


def problem(msg: str) -> None:
    problems.append(msg)


def load_yaml_docs(path: Path) -> list:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problem(f"{path.relative_to(ROOT)}: YAML does not parse: {e}")
        return []


# --- syntax ---------------------------------------------------------------------------------
yaml_files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml"))
for p in yaml_files:
    load_yaml_docs(p)
print(f"yaml: {len(yaml_files)} files parse")

dash_path = DEPLOY / "grafana/dashboards/orderflow.json"
dashboard = {}
try:
    dashboard = json.loads(dash_path.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    if len(ids) != len(set(ids)):
        problem(f"{dash_path.relative_to(ROOT)}: duplicate panel ids")
    for p in dashboard["panels"]:
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            problem(f"dashboard panel {p['title']!r} is wider than the 24-column grid")
    print(f"dashboard: valid JSON, {len(ids)} panels")
except (json.JSONDecodeError, KeyError) as e:
    problem(f"{dash_path.relative_to(ROOT)}: {e}")

# --- compose --------------------------------------------------------------------------------
compose_path = DEPLOY / "compose.yaml"
compose = (load_yaml_docs(compose_path) or [{}])[0]
services = compose.get("services", {})
dockerfile_stages: dict[str, dict[str, list[str]]] = {}  # dockerfile -> stage -> EXPOSE ports


def stages_of(dockerfile: Path) -> dict[str, list[str]]:
    if dockerfile not in dockerfile_stages:
        stages: dict[str, list[str]] = {}
        current = None
        for line in dockerfile.read_text().splitlines():
            m = re.match(r"\s*FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
            if m:
                current = m.group(1)
                stages[current] = []
            m = re.match(r"\s*EXPOSE\s+(.+)", line, re.I)
            if m and current:
                stages[current] += m.group(1).split()
        dockerfile_stages[dockerfile] = stages
    return dockerfile_stages[dockerfile]


mounts: dict[str, list[tuple[str, Path]]] = {}  # service -> [(container path, host path)]
image_ports: dict[str, list[str]] = {}
checked_paths = 0
for name, svc in services.items():
    build = svc.get("build")
    if build:
        context = (DEPLOY / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        if not context.is_dir():
            problem(f"compose {name}: build context {build['context']} does not exist")
        elif not dockerfile.is_file():
            problem(f"compose {name}: Dockerfile {build.get('dockerfile')} does not exist")
        else:
            target = build.get("target")
            stages = stages_of(dockerfile)
            if target and target not in stages:
                problem(f"compose {name}: Dockerfile has no stage {target!r} ({', '.join(stages)})")
            elif target:
                image_ports[name] = stages[target]
    for vol in svc.get("volumes", []):
        if isinstance(vol, str) and vol.startswith((".", "/")):
            host, container = vol.split(":")[:2]
            host_path = (DEPLOY / host).resolve()
            checked_paths += 1
            if not host_path.exists() and not generated(host_path):
                problem(f"compose {name}: bind mount source {host} does not exist")
            mounts.setdefault(name, []).append((container, host_path))

    def container_file_exists(value: str, where: str) -> None:
        global checked_paths
        for token in re.split(r"[=\s]", value):
            if not token.startswith("/"):
                continue
            for container, host_path in mounts.get(name, []):
                if token == container or token.startswith(container.rstrip("/") + "/"):
                    checked_paths += 1
                    mapped = host_path / token[len(container):].lstrip("/")
                    if not mapped.exists() and not generated(mapped):
                        problem(f"compose {name}: {where} names {token}, but {mapped.relative_to(ROOT)} does not exist")

    command = svc.get("command", [])
    for arg in command if isinstance(command, list) else [command]:
        container_file_exists(str(arg), "command")
    env = svc.get("environment", {})
    if isinstance(env, dict):
        for k, v in env.items():
            container_file_exists(str(v), f"environment {k}")

# Grafana: the provider's folder must be a mount holding the dashboard.
grafana_mounts = mounts.get("grafana", [])
for prov in sorted((DEPLOY / "grafana/provisioning/dashboards").glob("*.y*ml")):
    for doc in load_yaml_docs(prov):
        for provider in doc.get("providers", []):
            path = provider.get("options", {}).get("path", "")
            hosts = [h for c, h in grafana_mounts if c.rstrip("/") == path.rstrip("/")]
            checked_paths += 1
            if not hosts:
                problem(f"{prov.relative_to(ROOT)}: provider path {path} is not a grafana mount in compose")
            elif not (hosts[0] / dash_path.name).is_file():
                problem(f"{prov.relative_to(ROOT)}: {path} does not hold {dash_path.name}")

# Prometheus targets are compose services on the ports their images expose.
prom = (load_yaml_docs(DEPLOY / "prometheus/prometheus.yml") or [{}])[0]
targets = 0
for job in prom.get("scrape_configs", []):
    found = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
    found += [f"{n}:{sd.get('port', 80)}" for sd in job.get("dns_sd_configs", []) for n in sd.get("names", [])]
    for target in found:
        host, _, port = target.partition(":")
        if host == "localhost":
            continue
        targets += 1
        if host not in services:
            problem(f"prometheus.yml job {job['job_name']}: target {target} is not a compose service")
        elif port not in image_ports.get(host, []):
            problem(f"prometheus.yml job {job['job_name']}: {host} does not EXPOSE {port} ({image_ports.get(host)})")
print(f"compose: {len(services)} services, {checked_paths} file references, {targets} scrape targets checked")

# --- metric names -----------------------------------------------------------------------------
metrics_rs = (ROOT / "crates/telemetry/src/metrics.rs").read_text()
exported = set(re.findall(r'pub const \w+: &str = "(orderflow_\w+)"', metrics_rs))
if not exported:
    problem("crates/telemetry/src/metrics.rs: found no metric names (did its layout change?)")
used_in = {
    "alerts.yml": (DEPLOY / "prometheus/alerts.yml").read_text(),
    "alerts_test.yml": (DEPLOY / "prometheus/alerts_test.yml").read_text(),
    "orderflow.json": dash_path.read_text(),
}
names_checked = set()
for where, text in used_in.items():
    for name in set(re.findall(r"\borderflow_[a-z_]+", text)):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        names_checked.add(base)
        if base not in exported:
            problem(f"{where}: metric {name} is not exported (crates/telemetry/src/metrics.rs)")
print(f"metrics: {len(names_checked)} names used, all among the {len(exported)} the code exports"
      if not any("is not exported" in p for p in problems) else "metrics: unknown names found")

if problems:
    print("\n".join(["", "PROBLEMS:"] + [f"  - {p}" for p in problems]), file=sys.stderr)
    sys.exit(1)
