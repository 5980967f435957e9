#!/usr/bin/env bash
# Install the service with its test dependencies into a virtualenv and run the
# whole test suite:  scripts/test.sh [VENV_DIR] [PYTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-.venv}"
shift || true
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[test]'
# xds-protos ships an older copy of opentelemetry/proto/common/v1/common_pb2.py
# that can overwrite opentelemetry-proto's, which breaks OTLP export; put the
# real one back.
"$venv/bin/python" -m pip install --quiet --force-reinstall --no-deps \
  "opentelemetry-proto==$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"

# The Node.js client test calls a live server through @grpc/grpc-js.
if command -v npm >/dev/null; then
  npm ci --prefix clients/node --no-audit --no-fund --silent
fi

PATH="$(cd "$venv" && pwd)/bin:$PATH" python -m pytest -q -p no:cacheprovider "$@"
