#!/bin/sh
# The Debian packages the test suite drives, installed with apt-get when one is missing:
# postgresql (the PostgreSQL store's tests start a server of their own), chromium (the
# console's browser tests), systemd (`systemd-analyze verify` of the unit), nodejs and npm
# (the FHIR test server and the OpenID provider of tests/peers/; a Node already installed, from Debian or
# elsewhere, is kept). As root, or through sudo; anywhere else, it says what to install and
# stops.
set -eu
missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v node >/dev/null 2>&1 || missing="$missing nodejs npm"
if command -v node >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then
    echo "node is installed without npm, which the FHIR test server's packages need" >&2
    exit 2
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "the tests need these Debian packages:$missing (apt-get install$missing, as root)" >&2
    exit 2
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "the tests need:$missing (Debian package names); install them, then run make test again" >&2
    exit 2
fi
echo "installing the Debian packages the tests drive:$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
