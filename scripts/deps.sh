#!/bin/sh
# Install every Debian 12 package ganglion needs to build, test and benchmark.
# Runs apt-get as root, or through sudo when started by another user.
set -eu
PACKAGES="build-essential autoconf automake libtool pkg-config
  libltdl-dev libhiredis-dev libsqlite3-dev libconfig-dev libhwloc-dev libuv1-dev
  libcmocka-dev libzstd-dev libjansson-dev libglib2.0-dev redis-server redis-tools sqlite3 valgrind prometheus"
if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PACKAGES
