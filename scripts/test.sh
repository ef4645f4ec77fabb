#!/usr/bin/env bash
# The whole test run, as `make test` and CI run it: lint, start the services the tests need,
# run pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Tests use their own broker port so they never touch a `framewatch up` broker on 9092.
export FRAMEWATCH_KAFKA_PORT=${FRAMEWATCH_TEST_KAFKA_PORT:-19092}
export FRAMEWATCH_TEST_KAFKA=127.0.0.1:$FRAMEWATCH_KAFKA_PORT
ruff check .
mypy framewatch ingest processing dashboards
# Known vulnerabilities in requirements.lock fail the run unless .ci/audit-allowlist.toml accepts them
# (with CI=true an unreachable vulnerability service fails it too; see scripts/audit.py).
python scripts/audit.py
# helm, checkov, hadolint and docker compose for the deployment checks (cached after the first run)
FRAMEWATCH_TOOLS_COMPOSE=1 scripts/install-tools.sh
# SeaweedFS's weed, the S3 store of the sink's and the API's object-store tests (built once from
# the Go module proxy, ~10 min with both cores, then cached)
GOFLAGS=-p=2 scripts/install-weed.sh
# A broker that was running before the run is left alone; one this run starts is stopped after it.
if deploy/kafka/kafka.sh status >/dev/null 2>&1; then
  deploy/kafka/kafka.sh start
else
  deploy/kafka/kafka.sh start
  trap 'deploy/kafka/kafka.sh stop >/dev/null 2>&1 || true' EXIT
fi
python -m pytest "$@"
