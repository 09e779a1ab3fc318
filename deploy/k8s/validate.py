"""Offline checks of pledgesync's deployment files, run by deploy/check.sh inside its virtualenv.

    validate.py manifests RENDERED.yaml K8S_VERSION...   schema and consistency checks of one overlay
    validate.py rules RENDERED.yaml OUT.yaml             extract the PrometheusRule for promtool
    validate.py dashboard DASHBOARD.json OUT.yaml        check the dashboard, extract its PromQL
    validate.py metrics-documented DOC.md FILE...        every pledgesync_ metric used is documented
    validate.py config-documented DOC.md CONFIG.toml     every configuration key set is documented
    validate.py runbooks DOC.md RENDERED_RULES.yaml      every alert is documented, every runbook link resolves

Every command prints what it checked and exits 1 on the first kind of failure it finds (after
listing all of them).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml
from kubernetes_validate import utils as kv

HERE = Path(__file__).resolve().parent
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication-keda-v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
# Deployment → (section, key, the binary's default) of the shutdown grace its pods must outlast.
GRACE_KEYS = {
    "pledgesync-scheduler": ("api", "shutdown_grace_secs", 20),
    "pledgesync-fetcher": ("fetch", "shutdown_grace_secs", 25),
    "pledgesync-sink": ("sink", "shutdown_grace_secs", 25),
}


class Failures:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)
        print(f"  FAIL {message}")

    def exit(self, what: str) -> None:
        if self.items:
            print(f"{what}: {len(self.items)} problem(s)")
            sys.exit(1)
        print(f"{what}: ok")


def load_all(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def ident(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def pod_specs(obj: dict):
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield obj["spec"]["template"]["spec"]


def check_schemas(objs: list[dict], versions: list[str], fail: Failures) -> None:
    crd_validators = {
        key: jsonschema.Draft202012Validator(json.loads((HERE / "crd-schemas" / name).read_text()))
        for key, name in CRD_SCHEMAS.items()
    }
    for obj in objs:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in crd_validators:
            errors = sorted(crd_validators[key].iter_errors(obj), key=lambda e: list(e.path))
            for e in errors:
                fail.add(f"{ident(obj)}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}")
            if not errors:
                print(f"  ok   {ident(obj)} ({key[0]}) against deploy/k8s/crd-schemas")
            continue
        problems = []
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as e:
                problems.append(f"{ident(obj)}: Kubernetes {version}: {'.'.join(map(str, e.path))}: {e.message}")
            except kv.SchemaNotFoundError:
                # Neither a core kind of this version nor a custom kind we have a schema for:
                # nothing may pass unvalidated.
                problems.append(f"{ident(obj)}: no schema for {key[0]} {key[1]} in Kubernetes {version} or deploy/k8s/crd-schemas")
        for problem in problems:
            fail.add(problem)
        if not problems:
            print(f"  ok   {ident(obj)} ({key[0]}) against Kubernetes {', '.join(versions)} (strict)")


def check_consistency(objs: list[dict], fail: Failures) -> None:
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    deployments = by_kind.get("Deployment", {})
    secrets = by_kind.get("Secret", {})
    configmaps = by_kind.get("ConfigMap", {})

    # KEDA creates its own HPA for each ScaledObject: a second HPA on the same Deployment would
    # fight it for the replica count.
    scaled: dict[str, list[str]] = {}
    for so in by_kind.get("ScaledObject", {}).values():
        scaled.setdefault(so["spec"]["scaleTargetRef"]["name"], []).append(ident(so))
        for trig in so["spec"]["triggers"]:
            ref = trig.get("authenticationRef", {}).get("name")
            if ref and ref not in by_kind.get("TriggerAuthentication", {}):
                fail.add(f"{ident(so)}: authenticationRef {ref} is not in the overlay")
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        scaled.setdefault(hpa["spec"]["scaleTargetRef"]["name"], []).append(ident(hpa))
    for target, owners in scaled.items():
        if target not in deployments:
            fail.add(f"{', '.join(owners)}: scale target Deployment/{target} is not in the overlay")
        if len(owners) > 1:
            fail.add(f"Deployment/{target} is scaled by more than one autoscaler: {', '.join(owners)}")
    for name in ("pledgesync-fetcher", "pledgesync-sink"):
        if name in deployments and name not in scaled:
            fail.add(f"Deployment/{name} has no autoscaler (components/keda or components/hpa)")
        if name in deployments and "replicas" in deployments[name]["spec"]:
            fail.add(f"Deployment/{name} sets spec.replicas, which every apply would reset under the autoscaler")

    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        sel = pdb["spec"]["selector"].get("matchLabels", {})
        if not any(
            all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())
            for d in deployments.values()
        ):
            fail.add(f"{ident(pdb)}: selects no Deployment's pods")

    config = None
    for cm in configmaps.values():
        if "config.toml" in cm.get("data", {}):
            try:
                config = tomllib.loads(cm["data"]["config.toml"])
            except tomllib.TOMLDecodeError as e:
                fail.add(f"{ident(cm)}: config.toml is not valid TOML: {e}")

    for dep in deployments.values():
        name = dep["metadata"]["name"]
        spec = dep["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if config is not None and name in GRACE_KEYS:
            section, key, default = GRACE_KEYS[name]
            inner = config.get(section, {}).get(key, default)
            if inner >= grace:
                fail.add(f"{ident(dep)}: terminationGracePeriodSeconds {grace} must exceed {section}.{key} {inner}")
        if spec.get("automountServiceAccountToken") is not False:
            fail.add(f"{ident(dep)}: automountServiceAccountToken must be false")
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or not isinstance(psc.get("runAsUser"), int) or psc.get("runAsUser") == 0:
            fail.add(f"{ident(dep)}: pod must run as a numeric non-root user")
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{ident(dep)} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False:
                fail.add(f"{where}: needs readOnlyRootFilesystem true and allowPrivilegeEscalation false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                fail.add(f"{where}: must drop ALL capabilities")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        fail.add(f"{where}: no {part}.{r}")
            if c in spec["containers"]:
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    got = c.get(probe, {}).get("httpGet", {}).get("path")
                    if got != path:
                        fail.add(f"{where}: {probe} must GET {path}, not {got}")
            if "--config" not in c.get("args", []):
                fail.add(f"{where}: not started with --config")
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and secrets and not ref.get("optional"):
                    secret = secrets.get(ref["name"])
                    if secret is None:
                        fail.add(f"{where}: env {env['name']} refers to Secret {ref['name']}, not in the overlay")
                    elif ref["key"] not in {**secret.get("data", {}), **secret.get("stringData", {})}:
                        fail.add(f"{where}: env {env['name']} refers to key {ref['key']} missing from Secret {ref['name']}")
                if env["name"].startswith("PLEDGESYNC__") and "value" in env:
                    key = env["name"].removeprefix("PLEDGESYNC__").lower()
                    if key.split("__")[0] in ("postgres", "rabbitmq", "redis") and key.endswith("__url") \
                            or key in ("security__encryption_key", "security__retired_keys", "api__tokens"):
                        fail.add(f"{where}: secret {env['name']} given as a plain value; use a secretKeyRef")
        for vol in spec.get("volumes", []):
            cm = vol.get("configMap", {}).get("name")
            if cm and cm not in configmaps:
                fail.add(f"{ident(dep)}: volume {vol['name']} refers to ConfigMap {cm}, not in the overlay")
    print(f"  ok   consistency: autoscalers, PDB selectors, grace periods, security contexts, probes, references"
          if not fail.items else "  consistency checked")


def cmd_manifests(path: str, versions: list[str]) -> None:
    fail = Failures()
    objs = load_all(path)
    print(f"{path}: {len(objs)} objects")
    check_schemas(objs, versions, fail)
    check_consistency(objs, fail)
    fail.exit(path)


def cmd_rules(path: str, out: str) -> None:
    fail = Failures()
    rules = [o for o in load_all(path) if o.get("kind") == "PrometheusRule"]
    if not rules:
        fail.add(f"{path}: no PrometheusRule")
    groups = [g for r in rules for g in r["spec"]["groups"]]
    Path(out).write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    alerts = [r["alert"] for g in groups for r in g["rules"] if "alert" in r]
    for r in (r for g in groups for r in g["rules"] if "alert" in r):
        for a in ("summary", "description", "runbook"):
            if a not in r.get("annotations", {}):
                fail.add(f"alert {r['alert']}: no {a} annotation")
        if "severity" not in r.get("labels", {}):
            fail.add(f"alert {r['alert']}: no severity label")
    print(f"  {len(alerts)} alerts in {len(groups)} groups written to {out}")
    fail.exit("PrometheusRule")


GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": ".*"}


def cmd_dashboard(path: str, out: str) -> None:
    fail = Failures()
    board = json.loads(Path(path).read_text(encoding="utf-8"))
    for key in ("uid", "title", "panels", "schemaVersion", "templating"):
        if key not in board:
            fail.add(f"{path}: no {key}")
    ids, records = set(), []
    for panel in board.get("panels", []):
        pid = panel.get("id")
        if pid in ids:
            fail.add(f"panel {panel.get('title')}: duplicate id {pid}")
        ids.add(pid)
        pos = panel.get("gridPos", {})
        if pos.get("x", 0) + pos.get("w", 0) > 24:
            fail.add(f"panel {panel.get('title')}: wider than the 24-column grid")
        if panel.get("type") == "row":
            continue
        if not panel.get("targets"):
            fail.add(f"panel {panel.get('title')}: no query")
        for t in panel.get("targets", []):
            expr = t.get("expr", "")
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            if "$" in expr:
                fail.add(f"panel {panel.get('title')}: unknown variable in {t.get('expr')}")
            records.append({"record": f"dashboard:panel_{pid}_{t.get('refId', 'A').lower()}", "expr": expr})
    Path(out).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}, sort_keys=False), encoding="utf-8")
    print(f"  {len(ids)} panels, {len(records)} queries written to {out} for promtool")
    fail.exit(path)


def cmd_metrics_documented(doc: str, files: list[str]) -> None:
    fail = Failures()
    documented = set(re.findall(r"`(pledgesync_[a-z0-9_]+)", Path(doc).read_text(encoding="utf-8")))
    used: set[str] = set()
    for f in files:
        used |= set(re.findall(r"\b(pledgesync_[a-z0-9_]+)", Path(f).read_text(encoding="utf-8")))
    for metric in sorted(used):
        base = re.sub(r"_(bucket|count|sum)$", "", metric)
        if metric not in documented and base not in documented:
            fail.add(f"{metric} is used by the alerts or the dashboard but not listed in {doc}")
    if not fail.items:
        print(f"  {len(used)} pledgesync_ metric names used, all listed in {doc}")
    fail.exit("metrics documented")


def cmd_config_documented(doc: str, config: str) -> None:
    fail = Failures()
    documented = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", Path(doc).read_text(encoding="utf-8")))
    keys = [f"{section}.{key}" for section, table in tomllib.loads(Path(config).read_text(encoding="utf-8")).items()
            for key in table]
    for key in keys:
        if key not in documented:
            fail.add(f"{config} sets `{key}`, which {doc} does not list: a binary would refuse an unknown key")
    if not fail.items:
        print(f"  {len(keys)} keys set in {config}, all listed in {doc}")
    fail.exit("configuration keys documented")


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def cmd_runbooks(doc: str, rules_path: str) -> None:
    fail = Failures()
    text = Path(doc).read_text(encoding="utf-8")
    anchors = {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}
    for link in sorted(set(re.findall(r"\]\(#([^)]+)\)", text))):
        if link not in anchors:
            fail.add(f"{doc}: link to #{link}, which is no heading")
    rules = [r for o in load_all(rules_path) if o.get("kind") == "PrometheusRule"
             for g in o["spec"]["groups"] for r in g["rules"] if "alert" in r]
    for r in rules:
        if f"**{r['alert']}**" not in text:
            fail.add(f"alert {r['alert']} is not described in {doc}")
        runbook = r.get("annotations", {}).get("runbook", "")
        page, _, anchor = runbook.partition("#")
        if not doc.endswith(page) or anchor not in anchors:
            fail.add(f"alert {r['alert']}: runbook {runbook} is not a heading of {doc}")
    if not fail.items:
        print(f"  {len(rules)} alerts described in {doc}, their runbook links and the page's own links resolve")
    fail.exit("runbooks")


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "manifests":
        cmd_manifests(args[0], args[1:])
    elif cmd == "rules":
        cmd_rules(args[0], args[1])
    elif cmd == "dashboard":
        cmd_dashboard(args[0], args[1])
    elif cmd == "metrics-documented":
        cmd_metrics_documented(args[0], args[1:])
    elif cmd == "config-documented":
        cmd_config_documented(args[0], args[1])
    elif cmd == "runbooks":
        cmd_runbooks(args[0], args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
