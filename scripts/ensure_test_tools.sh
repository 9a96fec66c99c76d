#!/usr/bin/env bash
# Install the Debian tools some tests drive when they are missing (make test, CI):
#   iptables  - iptables-restore/-save, nft and legacy backends (tests/aksim/test_iptables_dumps.py)
#   iproute2  - `ip netns`, so those tests restore rules in a namespace of their own, never the host's
#   chromium  - the browser Playwright drives in tests/browser/ (Debian's, at /usr/bin/chromium)
# Idempotent and quiet: does nothing when all are there. Never removes anything.
set -euo pipefail

# iptables lives in /usr/sbin, which a non-login shell's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "ensure_test_tools: cannot install ${missing[*]} without root; the tests that need them will skip" >&2
    exit 0
fi

install() {  # quiet unless it fails
    local out
    out=$("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" 2>&1) && return 0
    printf '%s\n' "$out"
    return 1
}

echo "ensure_test_tools: installing ${missing[*]}" >&2
# The package lists may be absent or stale on a fresh machine: refresh them only then.
if ! install >/dev/null; then
    "${as_root[@]}" apt-get update -qq
    install >&2
fi
