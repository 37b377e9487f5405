#!/usr/bin/env bash
# Installs everything the tests need (Debian packages when root, the project with its
# test extras) and runs lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    xargs -a .ci/apt-packages.txt apt-get install -y -qq --no-install-recommends >/dev/null
    mkdir -p /run/sshd
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"
python3 -m ruff check core plugins tests bench
echo "== mypy (core and built-in plugins)"
python3 -m mypy
echo "== pytest"
python3 -m pytest "$@"
