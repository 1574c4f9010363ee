#!/bin/sh
# Installs every Debian package hsmactor's build, tests and demo need.
# Idempotent: packages already present are reported and skipped, and
# `apt-get update` runs only when something is missing.
set -eu

PACKAGES="bazel-bootstrap bazel-rules-java libcaf-dev softhsm2 catch2 libp11-kit-dev opensc \
libssl-dev openssl libengine-pkcs11-openssl g++ python3 \
nlohmann-json3-dev libcli11-dev libasio-dev wrk"

missing=""
for package in $PACKAGES; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    :
  else
    missing="$missing $package"
  fi
done

if [ -z "$missing" ]; then
  echo "install-deps: all packages present ($PACKAGES)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
echo "install-deps: done"
