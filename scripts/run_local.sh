#!/usr/bin/env bash
# `make run`: the embedded AWS, a first mock load and Dagster (code server, daemon, webserver) on
# 127.0.0.1:3000. Ctrl-C stops everything. Options: --port N, --orders N, --rate R, --no-load.
# The work is in sales_ops/local/devserver.py (signal handling and process groups are easier in Python).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${VENV:-.venv}/bin/python" -m sales_ops.local.devserver "$@"
