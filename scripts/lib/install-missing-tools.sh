# Sourced by the package and container tests: install_missing_tools TOOL:PACKAGE... installs,
# with apt-get, the Debian package of each tool that is not on the PATH. The caller defines
# say and fail (its own prefix on every line), as those scripts do.
install_missing_tools() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
    done
    [ "${#need[@]}" -gt 0 ] || return 0
    say "installing ${need[*]}"
    apt-get update -qq >&2 || fail "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 ||
        fail "apt-get install ${need[*]} failed"
}
