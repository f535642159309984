#!/usr/bin/env bash
# Builds Switchyard (release) and serves the bundled demo repository: gRPC on 127.0.0.1:8001, REST on 127.0.0.1:8000.
# Installs missing system packages first. Extra arguments go to `switchyard serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
swift build -c release --product switchyard
exec "$(swift build -c release --show-bin-path)/switchyard" serve --model-repository models "$@"
