#!/usr/bin/env bash
# Install MirrorNeuron for development: the system sandbox (bubblewrap) and the package
# with its test dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap (the executor sandbox), slirp4netns and nftables (a sandbox's own
# network for nodes with network: true, walled off from this host), iproute2 (the network
# tests' test hosts), redis-server (the Redis store's tests) and chromium (the web UI's browser
# tests, driven by Playwright: no browser is downloaded).
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "warning: not installed: ${missing[*]}; install them (e.g. 'sudo apt-get install ${missing[*]}')" >&2
        echo "         bubblewrap runs executor nodes in the sandbox, slirp4netns and nftables give networked" >&2
        echo "         sandboxes their own network; redis-server is needed to test the Redis store," >&2
        echo "         chromium to test the web UI" >&2
    fi
fi

python3 -m pip install -q --upgrade pip >/dev/null 2>&1 || true
python3 -m pip install -q -e '.[test]'
