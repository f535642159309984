#!/usr/bin/env bash
# Offline checks of deploy/: yamllint over every manifest and the configuration files, then
# scripts/check_deploy.py (kustomize rendering, Kubernetes schema validation with kubernetes-validate,
# cross-resource consistency, the dashboard's JSON and its metrics against the gateway's source and a live
# /metrics scrape of the binary in SWITCHYARD_BIN). Uses the test environment from scripts/bootstrap.sh --test.
#   SWITCHYARD_BIN=.build/debug/switchyard scripts/check-deploy.sh
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${SWITCHYARD_TEST_VENV:-$HOME/.cache/switchyard/test-venv}
python="$venv/bin/python"
if ! "$python" -c 'import yamllint, kubernetes_validate, yaml' 2>/dev/null; then
    echo "check-deploy: yamllint and kubernetes-validate are missing from $venv; run scripts/bootstrap.sh --test" >&2
    exit 1
fi

status=0
echo "== yamllint deploy/"
if "$python" -m yamllint --strict -c deploy/.yamllint.yaml deploy; then
    echo "PASS yamllint"
else
    echo "FAIL yamllint"
    status=1
fi

if command -v systemd-analyze >/dev/null; then
    echo "== systemd-analyze verify deploy/systemd/switchyard.service"
    # The unit names the installed binary, absent on a build machine: that one finding is expected.
    findings=$(systemd-analyze verify deploy/systemd/switchyard.service 2>&1 | grep -v "/usr/local/bin/switchyard is not executable" || true)
    if [ -z "$findings" ]; then echo "PASS systemd unit"; else echo "$findings"; echo "FAIL systemd unit"; status=1; fi
else
    echo "SKIP systemd unit (systemd-analyze is not installed)"
fi

echo "== manifests, dashboard, live gateway"
"$python" scripts/check_deploy.py "$@" || status=1
exit $status
