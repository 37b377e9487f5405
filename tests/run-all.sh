#!/usr/bin/env bash
# Installs everything the tests need (Debian packages when root, unless UPKEEPER_NO_APT is
# set; the project with its test extras) and runs lint, type checks and the whole suite.
#
# Python: the active virtualenv when there is one, else .venv in the checkout (created
# here), so it works on a Python that refuses pip installs (Debian's "externally
# managed" python3) and inside a venv alike. Arguments go to pytest;
# --setup-only installs and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && [ -z "${UPKEEPER_NO_APT:-}" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    xargs -a .ci/apt-packages.txt apt-get install -y -qq --no-install-recommends >/dev/null
    mkdir -p /run/sshd
fi

if python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)'; then
    py="$(python3 -c 'import sys; print(sys.executable)')"
else
    [ -x .venv/bin/python ] || python3 -m venv .venv
    py=.venv/bin/python
fi
echo "== python: $py"
"$py" -m pip install -q --disable-pip-version-check -e '.[test]'

if [ "${1:-}" = "--setup-only" ]; then
    exit 0
fi
echo "== ruff"
"$py" -m ruff check core plugins tests bench
echo "== mypy (core and built-in plugins)"
"$py" -m mypy
echo "== import-linter (layers, core knows no plugin, plugins use the public API)"
"$(dirname "$py")/lint-imports" --no-cache
echo "== pytest"
# Most tests wait on real servers and processes, not the CPU: 4 workers on 2 cores
# halve the wall time. UPKEEPER_TEST_WORKERS=0 runs them in this process.
"$py" -m pytest -n "${UPKEEPER_TEST_WORKERS:-4}" "$@"
