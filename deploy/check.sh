#!/usr/bin/env bash
# deploy/check.sh — offline checks of everything in deploy/ that is not Rust. No Docker, no cluster.
#
#   1. Renders each kustomize overlay (deploy/k8s/overlays/{dev,prod}) with `kubectl kustomize`.
#   2. Validates every rendered object, strictly (unknown fields are errors):
#      - Kubernetes' own kinds against the JSON schemas kubernetes-validate ships, for the oldest
#        Kubernetes we support (1.30) and the newest the pinned kubernetes-validate knows (1.37);
#      - the custom kinds (KEDA ScaledObject and TriggerAuthentication, Prometheus operator
#        ServiceMonitor and PrometheusRule) against the structural schemas in
#        deploy/k8s/crd-schemas/. kubernetes-validate ships no CRD schemas and, left alone, only
#        warns "couldn't find schema" and passes such objects; we validate them ourselves instead,
#        and any kind with neither schema fails;
#      - consistency across objects: one autoscaler per Deployment (KEDA and an HPA must never
#        both own one), PDBs that select pods, grace periods longer than the binaries' shutdown
#        grace, security contexts, probes, Secret and ConfigMap references.
#   3. Checks that every configuration key the ConfigMap sets is one docs/configuration.md lists.
#   4. Checks the alert rules (promtool check rules) and runs their unit tests (promtool test
#      rules), checks the Grafana dashboard and the syntax of every PromQL query in it, and that
#      docs/operations.md describes every alert, resolves every runbook link and lists every
#      pledgesync_ metric they use.
#   5. Scans the rendered manifests and deploy/Dockerfile with checkov; it must pass. Deliberate
#      waivers live beside what they waive, with a reason: `checkov.io/skipN` annotations in the
#      manifests, `#checkov:skip=` comments in the Dockerfile.
#
# Tools: kubernetes-validate and checkov at pinned versions in a virtualenv at .venv/deploy-check
# (installed on the first run, a couple of minutes; reused after), and promtool taken from
# Debian's `prometheus` package (downloaded, unpacked into the virtualenv, never installed).
# Needs kubectl, python3 >= 3.11 with venv, and apt-get (or a promtool on PATH). Takes no input;
# exits non-zero on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DEPLOY_CHECK_VENV:-$ROOT/.venv/deploy-check}
PINS=("kubernetes-validate==1.37.0" "checkov==3.3.30")
K8S_VERSIONS=(1.30 1.37)
OVERLAYS=(dev prod)

started=$SECONDS
step() { printf '\n== [%3d s] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf 'deploy/check.sh: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pledgesync-deploy-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- tools -------------------------------------------------------------------------------------
step "tools"
command -v kubectl >/dev/null || die "kubectl is needed for 'kubectl kustomize' (install kubectl 1.27 or later)"
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "python3 >= 3.11 is needed (tomllib); set PYTHON=/path/to/python3.11"

wanted=$(printf '%s\n' "${PINS[@]}")
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.pins" 2>/dev/null)" = "$wanted" ]; then
  echo "virtualenv $VENV has ${PINS[*]}"
else
  echo "installing ${PINS[*]} into $VENV (first run: a couple of minutes)"
  t=$SECONDS
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV (on Debian: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
  echo "$wanted" > "$VENV/.pins"
  echo "installed in $((SECONDS - t)) s"
fi

PROMTOOL_DIR=$VENV/promtool
if [ -x "$PROMTOOL_DIR/usr/bin/promtool" ]; then
  PROMTOOL=$PROMTOOL_DIR/usr/bin/promtool
elif command -v apt-get >/dev/null; then
  echo "fetching promtool from Debian's prometheus package (not installed, only unpacked)"
  mkdir -p "$PROMTOOL_DIR"
  # apt-get download needs the package lists; a fresh machine may have none yet.
  if ! (cd "$WORK" && apt-get download -q prometheus >/dev/null 2>&1); then
    apt-get update -q >/dev/null || die "apt-get update failed (needs root) and no promtool on PATH"
    (cd "$WORK" && apt-get download -q prometheus >/dev/null 2>&1) || die "could not download Debian's prometheus package"
  fi
  dpkg-deb --fsys-tarfile "$WORK"/prometheus_*.deb | tar -x -C "$PROMTOOL_DIR" ./usr/bin/promtool
  PROMTOOL=$PROMTOOL_DIR/usr/bin/promtool
elif command -v promtool >/dev/null; then
  PROMTOOL=$(command -v promtool)
else
  die "promtool is needed: install Prometheus's promtool or run on Debian/Ubuntu with apt-get"
fi
kubectl version --client 2>/dev/null | tr '\n' ' '; echo
# (checkov --version alone takes seconds to import checkov; the pins say the same.)
echo "python packages: $(tr '\n' ' ' < "$VENV/.pins")"
echo "$("$PROMTOOL" --version 2>&1 | head -n 1)"

PY=("$VENV/bin/python" "$ROOT/deploy/k8s/validate.py")

# --- render and validate -----------------------------------------------------------------------
for overlay in "${OVERLAYS[@]}"; do
  step "overlay $overlay: render and validate against Kubernetes ${K8S_VERSIONS[*]} and the CRD schemas"
  kubectl kustomize "$ROOT/deploy/k8s/overlays/$overlay" > "$WORK/$overlay.yaml"
  "${PY[@]}" manifests "$WORK/$overlay.yaml" "${K8S_VERSIONS[@]}"
done

step "configuration keys in the ConfigMap"
"${PY[@]}" config-documented "$ROOT/docs/configuration.md" "$ROOT/deploy/k8s/base/config.toml"

# --- alerts and dashboard ----------------------------------------------------------------------
step "alerts: promtool check rules and unit tests"
mkdir -p "$WORK/rules"
kubectl kustomize "$ROOT/deploy/prometheus" > "$WORK/prometheusrule.yaml"
"${PY[@]}" rules "$WORK/prometheusrule.yaml" "$WORK/rules/pledgesync-rules.rules.yaml"
"$PROMTOOL" check rules "$WORK/rules/pledgesync-rules.rules.yaml"
cp "$ROOT/deploy/prometheus/pledgesync-rules.test.yaml" "$WORK/rules/"
"$PROMTOOL" test rules "$WORK/rules/pledgesync-rules.test.yaml"

step "dashboard: structure and PromQL syntax"
"${PY[@]}" dashboard "$ROOT/deploy/grafana/pledgesync.json" "$WORK/rules/dashboard.rules.yaml"
"$PROMTOOL" check rules "$WORK/rules/dashboard.rules.yaml"

step "docs/operations.md covers the alerts and the metrics they use"
"${PY[@]}" runbooks "$ROOT/docs/operations.md" "$WORK/prometheusrule.yaml"
"${PY[@]}" metrics-documented "$ROOT/docs/operations.md" \
  "$ROOT/deploy/prometheus/pledgesync-rules.yaml" "$ROOT/deploy/grafana/pledgesync.json"

# --- security scan -----------------------------------------------------------------------------
step "checkov: rendered overlays and deploy/Dockerfile"
checkov_args=(--framework kubernetes dockerfile --skip-download --compact --quiet)
for overlay in "${OVERLAYS[@]}"; do checkov_args+=(-f "$WORK/$overlay.yaml"); done
checkov_args+=(-f "$ROOT/deploy/Dockerfile")
# --quiet prints failures only; the summary lines say what ran and what was waived.
(cd "$WORK" && "$VENV/bin/checkov" "${checkov_args[@]}")

printf '\ndeploy/check.sh: all checks passed in %d s\n' "$((SECONDS - started))"
