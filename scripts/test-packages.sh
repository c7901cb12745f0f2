#!/usr/bin/env bash
# The Debian package, tested as an administrator would use it (deploy/README.md):
# builds the .deb (scripts/build-deb.sh), checks it with lintian, installs it with dpkg -i,
# checks the unit with systemd-analyze (verify, and security with a ceiling on the exposure
# score), runs `dm3-bridge init`, `check` and `run` from the installed paths as the package's
# user, checks every file's owner and mode, then removes, reinstalls and purges it and checks
# what each step keeps and deletes. Any failure exits non-zero with a message saying what.
#
#   scripts/test-packages.sh            # builds the release binary if it is not current
#   DEB_BIN=path scripts/test-packages.sh
#
# It needs root (dpkg -i, setpriv) and installs what is missing with apt-get. It refuses to run
# on a machine where dm3-bridge is already installed: it would purge that node's data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { echo "test-packages: $*" >&2; }
fail() { echo "test-packages: FAILED: $*" >&2; exit 1; }
started=$SECONDS

[ "$(id -u)" = 0 ] || fail "must run as root (it installs the package with dpkg -i)"
command -v dpkg >/dev/null || fail "not a Debian system: dpkg is missing"

# --- tools ------------------------------------------------------------------------------------
# tool → the Debian package that has it
# shellcheck source=scripts/lib/install-missing-tools.sh
. scripts/lib/install-missing-tools.sh
install_missing_tools dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev strip:binutils systemd-analyze:systemd \
    lintian:lintian adduser:adduser setpriv:util-linux curl:curl jq:jq python3:python3

# What dpkg knows of the package: nothing, or "not-installed" after a purge. (Read into a
# variable, not piped: grep -q's early exit would fail the writer under pipefail.)
dpkg_status() { dpkg-query -W -f '${db:Status-Status}' dm3-bridge 2>/dev/null || true; }
if [ -n "$(dpkg_status)" ] && [ "$(dpkg_status)" != not-installed ]; then
    fail "dm3-bridge is already installed here (dpkg -s dm3-bridge); this test installs and purges it, \
which would delete that node's data. Purge it first if it is a leftover: dpkg --purge dm3-bridge"
fi

# --- build ------------------------------------------------------------------------------------
say "building the package"
deb="$(scripts/build-deb.sh | tail -n 1)"
[ -f "$deb" ] || fail "scripts/build-deb.sh made no package"
say "built $deb ($(du -h "$deb" | cut -f1)) in $((SECONDS - started)) s"

# lintian's verdict, with the tags this package is known to raise and why they are accepted:
# - no-manual-page: the node's documentation is `dm3-bridge --help` and /usr/share/doc;
# - non-standard-file-perm for /etc/default/dm3-bridge: it holds secrets, so 0600, not 0644;
# - initial-upload-closes-no-bugs: the changelog is written at build time, not a Debian upload;
# - embedded-library libyaml: the YAML parser (of the Matrix registration) is the crate
#   unsafe-libyaml-norway, libyaml translated to Rust, linked in as every crate is; there is no
#   C library to link against instead.
say "lintian"
lintian --fail-on error,warning --suppress-tags \
    no-manual-page,non-standard-file-perm,initial-upload-closes-no-bugs,embedded-library \
    "$deb" >&2 || fail "lintian found problems in $deb (above)"

# --- install ----------------------------------------------------------------------------------
purge_on_exit() { dpkg --purge dm3-bridge >/dev/null 2>&1 || true; }
trap purge_on_exit EXIT
say "dpkg -i"
dpkg -i "$deb" >&2 || fail "dpkg -i $deb failed"

expect_stat() { # path mode owner:group
    local got
    got="$(stat -c '%a %U:%G' "$1" 2>/dev/null)" || fail "$1 is missing"
    [ "$got" = "$2 $3" ] || fail "$1 is $got, expected $2 $3"
}
expect_absent() { [ ! -e "$1" ] || fail "$1 is still there after $2"; }

getent passwd dm3-bridge >/dev/null || fail "postinst made no user dm3-bridge"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd dm3-bridge)
[ "$uid" -lt 1000 ] || fail "dm3-bridge is not a system user (uid $uid)"
[ "$(getent group dm3-bridge | cut -d: -f3)" = "$gid" ] || fail "dm3-bridge's primary group is not dm3-bridge"
[ "$home" = /var/lib/dm3-bridge ] || fail "dm3-bridge's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "dm3-bridge can log in (shell $shell)"
expect_stat /usr/bin/dm3-bridge 755 root:root
expect_stat /usr/lib/systemd/system/dm3-bridge.service 644 root:root
expect_stat /etc/default/dm3-bridge 600 root:root
expect_stat /etc/dm3-bridge 750 root:dm3-bridge
expect_stat /var/lib/dm3-bridge 700 dm3-bridge:dm3-bridge
grep -q '^ /etc/default/dm3-bridge ' <<<"$(dpkg-query -W -f '${Conffiles}\n' dm3-bridge)" ||
    fail "/etc/default/dm3-bridge is not a conffile"
/usr/bin/dm3-bridge --version >/dev/null || fail "the installed binary does not run"

# --- the unit ---------------------------------------------------------------------------------
unit=/usr/lib/systemd/system/dm3-bridge.service
say "systemd-analyze verify"
# verify checks the unit's syntax and that ExecStart's binary exists, hence after dpkg -i. Its
# every line on stderr is a finding (unknown key, bad value, missing binary): none is accepted.
verify_out="$(systemd-analyze verify "$unit" 2>&1)" || fail "systemd-analyze verify failed: $verify_out"
[ -z "$verify_out" ] || fail "systemd-analyze verify warns: $verify_out"
# The exposure score of the sandbox (0 = locked down, 10 = none; 1.2 now, deploy/README.md).
# The ceiling makes a lost hardening line fail here; --threshold counts in tenths.
max_exposure=15
security="$(systemd-analyze security --offline=true --threshold="$max_exposure" "$unit" 2>&1)" ||
    fail "systemd-analyze security: exposure above 1.5: $(echo "$security" | tail -n 1)"
say "$(echo "$security" | tail -n 1)"

# --- init, check and run as the package's user ------------------------------------------------
# As the user, with only what the service would see: no DM3_BRIDGE_* of the calling
# environment. setpriv, not runuser: it execs, so a signal to the process reaches the node
# itself (runuser stands between them and kills its child on SIGTERM).
as_user() {
    setpriv --reuid "$1" --regid "$(id -g "$1")" --init-groups -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${@:2}"
}
say "dm3-bridge init as dm3-bridge"
as_user dm3-bridge /usr/bin/dm3-bridge init --data-dir /var/lib/dm3-bridge --name relay.example.eth \
    --public-url https://relay.example.org >/dev/null || fail "dm3-bridge init as dm3-bridge failed"
expect_stat /var/lib/dm3-bridge/master.key 600 dm3-bridge:dm3-bridge
expect_stat /var/lib/dm3-bridge/node-keys.sealed 600 dm3-bridge:dm3-bridge
# deploy/README.md's step: the config moves to /etc, root's, readable by the service's group.
install -m 0640 -o root -g dm3-bridge /var/lib/dm3-bridge/config.toml /etc/dm3-bridge/config.toml
rm /var/lib/dm3-bridge/config.toml

say "dm3-bridge check as dm3-bridge"
check_out="$(as_user dm3-bridge /usr/bin/dm3-bridge --config /etc/dm3-bridge/config.toml check 2>&1)" ||
    fail "dm3-bridge check as dm3-bridge failed: $check_out"
keys_line="$(grep '^node keys: open' <<<"$check_out")" || fail "check did not open the node keys: $check_out"
# Another user can read neither the config nor the keys.
if as_user nobody /usr/bin/dm3-bridge --config /etc/dm3-bridge/config.toml check >/dev/null 2>&1; then
    fail "user nobody could read dm3-bridge's config"
fi

say "dm3-bridge run as dm3-bridge, writable+executable memory refused (MemoryDenyWriteExecute)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
log="$(mktemp)"
# PR_SET_MDWE (65) with PR_MDWE_REFUSE_EXEC_GAIN (1): the kernel's form of the unit's
# MemoryDenyWriteExecute=yes, kept across exec, so the node runs as it would under systemd.
# The unit's UMask=0077, which makes the database 0600 (checked below).
old_umask="$(umask)"
umask 0077
# setpriv itself, not as_user: a function in the background is a subshell, whose pid is not
# the node's, and the node must get the SIGTERM below.
setpriv --reuid dm3-bridge --regid dm3-bridge --init-groups -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DM3_BRIDGE_NODE__LISTEN="127.0.0.1:$port" python3 -c '
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_MDWE) failed: errno %d" % ctypes.get_errno())
os.execv(sys.argv[1], sys.argv[1:])
' /usr/bin/dm3-bridge --config /etc/dm3-bridge/config.toml run >"$log" 2>&1 &
node=$!
umask "$old_umask"
ready=""
for _ in $(seq 1 100); do
    if ! kill -0 "$node" 2>/dev/null; then
        fail "the node stopped at start-up: $(cat "$log")"
    fi
    ready="$(curl -fsS "http://127.0.0.1:$port/ready" 2>/dev/null)" && break
    sleep 0.2
done
[ -n "$ready" ] || { kill "$node"; fail "the node was not ready in 20 s: $(cat "$log")"; }
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { kill "$node"; fail "GET /health failed"; }
kill -TERM "$node"
wait "$node" || fail "the node did not stop cleanly on SIGTERM: $(cat "$log")"
rm -f "$log"
expect_stat /var/lib/dm3-bridge/gateway-signer.sealed 600 dm3-bridge:dm3-bridge
expect_stat /var/lib/dm3-bridge/dm3-bridge.sqlite 600 dm3-bridge:dm3-bridge

# --- remove, reinstall, purge -----------------------------------------------------------------
# The administrator's edit of the conffile must survive remove and reinstall.
echo 'DM3_BRIDGE_LOG__FORMAT=json' >>/etc/default/dm3-bridge
say "dpkg -r"
dpkg -r dm3-bridge >&2 || fail "dpkg -r failed"
expect_absent /usr/bin/dm3-bridge "dpkg -r"
expect_absent "$unit" "dpkg -r"
for kept in /var/lib/dm3-bridge/master.key /var/lib/dm3-bridge/node-keys.sealed \
    /var/lib/dm3-bridge/dm3-bridge.sqlite /etc/dm3-bridge/config.toml /etc/default/dm3-bridge; do
    [ -f "$kept" ] || fail "dpkg -r deleted $kept (only purge may)"
done

say "dpkg -i again: the node keeps its keys"
dpkg -i "$deb" >&2 || fail "reinstalling $deb failed"
grep -q '^DM3_BRIDGE_LOG__FORMAT=json$' /etc/default/dm3-bridge ||
    fail "reinstalling replaced the administrator's /etc/default/dm3-bridge"
expect_stat /var/lib/dm3-bridge 700 dm3-bridge:dm3-bridge
check_out="$(as_user dm3-bridge /usr/bin/dm3-bridge --config /etc/dm3-bridge/config.toml check 2>&1)" ||
    fail "dm3-bridge check after reinstalling failed: $check_out"
grep -qxF "$keys_line" <<<"$check_out" || fail "the node's keys changed across remove and reinstall"

say "dpkg --purge"
dpkg --purge dm3-bridge >&2 || fail "dpkg --purge failed"
trap - EXIT
for gone in /usr/bin/dm3-bridge "$unit" /var/lib/dm3-bridge /etc/dm3-bridge /etc/default/dm3-bridge \
    /usr/share/doc/dm3-bridge; do
    expect_absent "$gone" "dpkg --purge"
done
if [ -n "$(dpkg_status)" ] && [ "$(dpkg_status)" != not-installed ]; then
    fail "dpkg still lists dm3-bridge after purge"
fi

say "passed in $((SECONDS - started)) s"
