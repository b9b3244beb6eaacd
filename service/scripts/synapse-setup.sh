#!/usr/bin/env bash
# Makes a Python virtualenv with Synapse (matrix-synapse from PyPI) for the
# Matrix integration tests and prints the venv's python interpreter on stdout
# (and nothing else there), so a test fixture or CI can do:
#
#   PYTHON="$(service/scripts/synapse-setup.sh)"
#   "$PYTHON" -m synapse.app.homeserver --help
#
# The venv defaults to target/synapse-venv (override: GOVTRUST_SYNAPSE_VENV).
# Idempotent and safe to run from parallel test binaries: an flock on
# <venv>.lock serialises installs, and a venv whose Synapse imports is reused
# as it is (the install takes ~25 s; reuse takes well under a second).
set -euo pipefail

# This script lives in service/scripts/; the workspace root is two up.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${GOVTRUST_SYNAPSE_VENV:-$root/target/synapse-venv}"
python="$venv/bin/python"
# Pin a major version so an upstream release cannot break the tests silently;
# bump deliberately.
spec="${GOVTRUST_SYNAPSE_SPEC:-matrix-synapse>=1.100,<2}"

# Written after an install whose Synapse imported; holds the spec, so a
# changed spec reinstalls. Checking it is instant, unlike importing Synapse.
marker="$venv/.govtrust-synapse-installed"

installed() {
    [[ -x "$python" && -f "$marker" && "$(cat "$marker")" == "$spec" ]]
}

usable() {
    [[ -x "$python" ]] && "$python" -c 'import synapse.app.homeserver' >/dev/null 2>&1
}

if installed; then
    printf '%s\n' "$python"
    exit 0
fi

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
# Another process may have finished the install while we waited for the lock.
if ! installed; then
    echo "synapse-setup: making sure $spec is installed in $venv" >&2
    host_python="$(command -v python3 || true)"
    if [[ -z "$host_python" ]]; then
        echo "synapse-setup: python3 not found" >&2
        exit 1
    fi
    if ! "$host_python" -m venv --help >/dev/null 2>&1; then
        echo "synapse-setup: python3 venv module missing (Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
    # Re-use an existing venv (pip skips what is already satisfied); make a
    # new one if there is none or it is broken.
    if ! [[ -x "$python" ]] || ! "$python" -m pip --version >/dev/null 2>&1; then
        rm -rf "$venv"
        "$host_python" -m venv "$venv"
        "$python" -m pip install --quiet --upgrade pip >&2
    fi
    "$python" -m pip install --quiet "$spec" >&2
    if ! usable; then
        echo "synapse-setup: Synapse installed but does not import" >&2
        exit 1
    fi
    printf '%s' "$spec" >"$marker"
fi
printf '%s\n' "$python"
