#!/usr/bin/env bash
# Fetches Debian trixie's mbedTLS 3.6 development package (headers and static libraries) and
# unpacks it into DIR, without installing it: `make -C clients/c mbedtls3` builds the core, its
# tests and the Linux client against it, since ESP-IDF 5 (the Arduino core for ESP32 3.x) ships
# mbedTLS 3 while Debian bookworm, the host's, ships 2.28.
#
# usage: clients/c/fetch-mbedtls3.sh DIR   (needs curl, xz and dpkg-deb; amd64 or arm64 hosts)
set -euo pipefail

dir=${1:?usage: fetch-mbedtls3.sh DIR}
arch=$(dpkg --print-architecture)
if [ -f "$dir/.complete" ]; then
    exit 0
fi

# The machine's own Debian mirror, as apt is configured (deb822 .sources or one-line .list files),
# unless DEBIAN_MIRROR names one: any mirror that carries trixie will do.
apt_mirror() {
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ { print $2 }' || true
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' || true
    } | { grep -v -e '-security' -e 'security\.' || true; } | awk 'NR == 1'
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
mirror=${mirror%/}
if [ -z "$mirror" ]; then
    echo "fetch-mbedtls3: no Debian mirror in apt's sources: set DEBIAN_MIRROR" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The pool file name changes with every Debian update: read it from the suite's package index.
if ! curl -fsS --retry 3 --max-time 120 -o "$tmp/Packages.xz" "$mirror/dists/trixie/main/binary-$arch/Packages.xz"; then
    echo "fetch-mbedtls3: $mirror has no trixie package index: set DEBIAN_MIRROR to a mirror that carries trixie" >&2
    exit 1
fi
filename=$(xz -dc "$tmp/Packages.xz" | awk '/^Package: /{p=$2} !found && p=="libmbedtls-dev" && /^Filename: /{print $2; found=1}')
if [ -z "$filename" ]; then
    echo "fetch-mbedtls3: libmbedtls-dev is not in trixie's package index for $arch" >&2
    exit 1
fi
curl -fsS --retry 3 --max-time 300 -o "$tmp/dev.deb" "$mirror/$filename"
rm -rf "$dir"
mkdir -p "$dir"
dpkg-deb -x "$tmp/dev.deb" "$dir"
version=$(sed -n 's/^#define MBEDTLS_VERSION_STRING *"\(.*\)"/\1/p' "$dir/usr/include/mbedtls/build_info.h")
case "$version" in
3.*) ;;
*) echo "fetch-mbedtls3: expected mbedTLS 3.x, got '$version' from $filename" >&2; exit 1 ;;
esac
touch "$dir/.complete"
echo "fetch-mbedtls3: mbedTLS $version in $dir"
