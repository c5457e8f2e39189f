#!/usr/bin/env bash
# Install MirrorNeuron for development: the system sandbox (bubblewrap) and the package
# with its test dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq bubblewrap >/dev/null
    else
        echo "warning: bubblewrap (bwrap) is not installed; install it (e.g. 'sudo apt-get install bubblewrap')" >&2
        echo "         to run executor nodes in the sandbox" >&2
    fi
fi

python3 -m pip install -q --upgrade pip >/dev/null 2>&1 || true
python3 -m pip install -q -e '.[test]'
