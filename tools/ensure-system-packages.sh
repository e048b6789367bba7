#!/usr/bin/env bash
# Make sure the Debian packages the build and the tests need are installed.
#
#   libvirt-dev, pkg-config  build libvirt-python from source
#   libvirt-clients          virt-xml-validate (domain XML checked against
#   libxml2-utils            libvirt's own schema), with xmllint
#   gcc                      only when no C compiler is found
#
# As root, missing packages are installed (apt-get update + install).  As
# another user, the script says which are missing and the command to run,
# and exits 1.  Extra package names may be given as arguments.
set -euo pipefail

packages=(libvirt-dev pkg-config libvirt-clients libxml2-utils "$@")
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    packages+=(gcc)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "error: dpkg-query not found; this script knows Debian and Ubuntu." >&2
    echo "Install the equivalents of: ${packages[*]}" >&2
    exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
    echo "==> installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    $cmd -qq
    exit 0
fi

echo "error: missing system packages: ${missing[*]}" >&2
echo "run as root:  apt-get update && $cmd" >&2
exit 1
