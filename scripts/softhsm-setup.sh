#!/usr/bin/env bash
# Makes SoftHSM2 available for the PKCS#11 tests and prints the path of its
# PKCS#11 module on stdout (and nothing else there), so CI can do:
#
#   export GOVTRUST_PKCS11_MODULE="$(scripts/softhsm-setup.sh)"
#   cargo test -p govtrust-pki --test pkcs11
#
# Idempotent: installs the Debian/Ubuntu package only when the module or
# softhsm2-util is missing. It creates no tokens: each test binary makes its
# own in a temporary directory via SOFTHSM2_CONF, so nothing here touches
# the system's token directory.
set -euo pipefail

find_module() {
    local candidate
    for candidate in \
        "${GOVTRUST_PKCS11_MODULE:-}" \
        /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so \
        /usr/lib64/pkcs11/libsofthsm2.so; do
        if [[ -n "$candidate" && -f "$candidate" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

if ! find_module >/dev/null || ! command -v softhsm2-util >/dev/null; then
    echo "softhsm-setup: installing softhsm2" >&2
    sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || {
            echo "softhsm-setup: not root and no sudo; install softhsm2 manually" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    ${sudo[@]+"${sudo[@]}"} apt-get update >&2
    ${sudo[@]+"${sudo[@]}"} apt-get install -y --no-install-recommends softhsm2 >&2
fi

if ! module="$(find_module)"; then
    echo "softhsm-setup: softhsm2 is installed but libsofthsm2.so was not found;" \
         "set GOVTRUST_PKCS11_MODULE" >&2
    exit 1
fi
command -v softhsm2-util >/dev/null || {
    echo "softhsm-setup: softhsm2-util not on PATH" >&2
    exit 1
}
echo "softhsm-setup: $(softhsm2-util --version) at $module" >&2
printf '%s\n' "$module"
