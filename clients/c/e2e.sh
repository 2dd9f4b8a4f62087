#!/usr/bin/env bash
# End-to-end check of the C client against a running provisioning service and its Thinger
# emulator: a new random device is provisioned, its credential logs in, and provisioning it again
# replaces the credential so that only the new one logs in. The client asks for protocol v2, so
# each credential arrives sealed to the device key and is opened by the client before it is saved.
#
# usage: FLEET_KEY_B64=<the stack's fleet key, base64> THINGER_EMULATOR_URL=<emulator base URL> \
#        clients/c/e2e.sh SERVICE_URL
# The device ID is E2E_DEVICE_PREFIX (default e2e_c_) and 12 random hex digits: the service's
# DEVICE_ID_PATTERN must match it. With THINGER_ANSWER_KEY set (the stack's answer key, as
# `npm start` prints it) the client accepts only answers the service signed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
provision="$here/build/provision"
service_url=${1:?usage: e2e.sh SERVICE_URL (with FLEET_KEY_B64 and THINGER_EMULATOR_URL set)}
: "${FLEET_KEY_B64:?set FLEET_KEY_B64 to the fleet key of the service under test}"
: "${THINGER_EMULATOR_URL:?set THINGER_EMULATOR_URL to the Thinger emulator base URL}"

fail() {
    echo "FAIL: e2e C client: $*"
    exit 1
}

# Value of key in a key=value file.
field() {
    sed -n "s/^$1=//p" "$2" | head -n 1
}

json_escape() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\"/\\\"}"
}

# Prints the HTTP status of an emulator login with (username, device, credential). The body goes
# through stdin so that the credential is not on a command line.
login_status() {
    printf '{"username":"%s","device":"%s","credential":"%s"}' \
        "$(json_escape "$1")" "$(json_escape "$2")" "$(json_escape "$3")" |
        curl -s -o /dev/null -w '%{http_code}' -X POST \
            "${THINGER_EMULATOR_URL%/}/__emulator/login" \
            -H 'content-type: application/json' --data-binary @- || true
}

# Asserts that no output of a run holds a secret.
assert_no_secret() {
    local secret=$1
    shift
    if grep -qF -- "$secret" "$@"; then
        fail "a secret was printed by provision ($*)"
    fi
}

make -s -C "$here" build/provision >/dev/null || fail "cannot build $provision"

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

device="${E2E_DEVICE_PREFIX:-e2e_c_}$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$FLEET_KEY_B64" >"$work/fleet.key"
"$provision" --derive-key --fleet-key-file "$work/fleet.key" --device "$device" \
    >"$work/device.key" ||
    fail "cannot derive the device key (is FLEET_KEY_B64 base64 of at least 32 bytes?)"
device_key=$(cat "$work/device.key")
creds="$work/thinger-credentials"

# First provisioning: a new device.
"$provision" --url "$service_url" --device "$device" --device-key-file "$work/device.key" \
    --out "$creds" >"$work/out1" 2>"$work/err1" ||
    fail "first provisioning exited $?: $(cat "$work/err1")"
[ "$(stat -c %a "$creds")" = 600 ] ||
    fail "credentials file mode is $(stat -c %a "$creds"), not 600"
[ "$(field created "$work/out1")" = true ] || fail "first provisioning did not report created=true"
[ "$(field device "$creds")" = "$device" ] || fail "credentials file names another device"
username=$(field username "$creds")
credential1=$(field credential "$creds")
[ -n "$username" ] && [ -n "$credential1" ] || fail "credentials file lacks username or credential"
assert_no_secret "$credential1" "$work/out1" "$work/err1"
assert_no_secret "$device_key" "$work/out1" "$work/err1"
status=$(login_status "$username" "$device" "$credential1")
[ "$status" = 200 ] || fail "the new credential does not log in (HTTP $status)"

# Second provisioning of the same device, as after a wiped flash: the credential is replaced.
"$provision" --url "$service_url" --device "$device" --device-key-file "$work/device.key" \
    --out "$creds" >"$work/out2" 2>"$work/err2" ||
    fail "second provisioning exited $?: $(cat "$work/err2")"
[ "$(stat -c %a "$creds")" = 600 ] || fail "replaced credentials file mode is not 600"
[ "$(field created "$work/out2")" = false ] ||
    fail "second provisioning did not report created=false"
credential2=$(field credential "$creds")
[ -n "$credential2" ] && [ "$credential2" != "$credential1" ] ||
    fail "second provisioning did not issue a new credential"
assert_no_secret "$credential2" "$work/out2" "$work/err2"
status=$(login_status "$username" "$device" "$credential2")
[ "$status" = 200 ] || fail "the replacement credential does not log in (HTTP $status)"
status=$(login_status "$username" "$device" "$credential1")
[ "$status" = 401 ] || fail "the replaced credential still gets HTTP $status, not 401"

echo "PASS: e2e C client: $device provisioned, logged in, re-provisioned; old credential refused"
