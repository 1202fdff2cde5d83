#!/usr/bin/env bash
# BIRD 1.6 (the BIRD Calico's calico-node runs a fork of) in a private prefix, beside bird2.
#
# Debian's `bird` (1.6) and `bird2` conflict as packages, so 1.6 is never installed with dpkg:
# its .deb is fetched with `apt-get download` and unpacked with `dpkg -x` into $PREFIX
# (default /opt/diag-bird1): $PREFIX/usr/sbin/bird, bird6, birdc, birdc6. Nothing outside
# $PREFIX changes. Idempotent: a prefix that already holds a working 1.6 is left as it is.
# Needs root and apt-get (the libraries it links, libreadline8 and libtinfo6, come with bird2).
# Prints the path of the bird binary on success.
set -euo pipefail
PREFIX=${DIAG_BIRD1_PREFIX:-/opt/diag-bird1}
BIRD="$PREFIX/usr/sbin/bird"

if [ -x "$BIRD" ] && "$BIRD" --version 2>&1 | grep -q '^BIRD version 1\.6'; then
  echo "$BIRD"
  exit 0
fi
command -v apt-get >/dev/null || { echo "bird1.sh: apt-get not found" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"   # apt-get download drops to the _apt user to write the file
cd "$work"
if ! apt-get download -qq bird >/dev/null 2>&1; then
  apt-get update -qq >/dev/null && apt-get download -qq bird >/dev/null
fi
deb=$(ls bird_1.6*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || { echo "bird1.sh: Debian's bird package is not 1.6: $(ls ./*.deb)" >&2; exit 1; }
mkdir -p "$PREFIX"
dpkg -x "$deb" "$PREFIX"
"$BIRD" --version 2>&1 | grep -q '^BIRD version 1\.6' \
  || { echo "bird1.sh: $BIRD does not run as BIRD 1.6" >&2; exit 1; }
echo "$BIRD"
