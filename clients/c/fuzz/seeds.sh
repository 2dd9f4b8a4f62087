#!/bin/sh
# Writes the seed corpus of each fuzz target into DIR/<target>/: the test vectors of
# docs/protocol.md (the same as clients/c/test/test_thinger_provision.c) as answers, envelopes and
# integers. libFuzzer mutates from these; what it finds on top goes to a corpus of its own.
set -eu
out=${1:?usage: seeds.sh DIR}
mkdir -p "$out/parse" "$out/sealed" "$out/open" "$out/clock" "$out/answer"

sealed_hmac='AQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRCewti+w3wMslflAGzlPfBBqmJ3DL2K'
sealed_claim='AQIAAQIDBAUGBwgJCguh/f7sv85TRWnDUn3B+dYycgg5e2UNcdOFJCfLo/y0Ocwqbe+c/K4W'
sealed_ecdh='AQMEl1bELjGsgI7WjwzAmGgW0mFMRwEKT0Pqy6NmP7buMjiziYCa0b5alkpe41o9ltrvS5ixtrdP4+IdoNyuz6JdLAABAgMEBQYHCAkKC2+DmAyfADnKSwBgUKVly8cl7aSPi0xVo+zaRumDRCMk+AqhYEcGNBM='
device=esp32_a1b2c3d4e5f6
host=backend.thinger.io

# $1 file, then the lines of the answer
answer() {
    file=$1
    shift
    printf '%s\n' "$@" >"$file"
}

answer "$out/parse/success" username=acme device=$device credential=Xq3kP9vL2mN8rT5wY7zA1bC4 \
    host=$host created=true
answer "$out/parse/existed-port" username=acme device=$device credential=Xq3kP9vL2mN8rT5wY7zA1bC4 \
    host=127.0.0.1:18090 created=false request_id=c0ffee
answer "$out/parse/clock-skew" error=clock_skew server_time=1764150412 request_id=c0ffee
answer "$out/parse/replayed" error=replayed server_time=253402300799
answer "$out/parse/unavailable" error=upstream_unavailable retry_after=30
printf 'username=acme\r\ndevice=%s\r\ncredential=Xq3kP9vL2mN8rT5wY7zA1bC4\r\nhost=%s\r\ncreated=true\r\n' \
    $device $host >"$out/parse/crlf"
printf '{"message":"Endpoint request timed out"}' >"$out/parse/gateway-json"

for dir in parse sealed; do
    answer "$out/$dir/sealed-hmac" username=acme device=$device sealed=$sealed_hmac host=$host created=true
    answer "$out/$dir/sealed-ecdh" username=acme device=$device sealed=$sealed_ecdh host=$host created=true
    answer "$out/$dir/sealed-claim" username=acme device=ws_kit0001 sealed=$sealed_claim host=$host created=true
done
cp "$out/parse/success" "$out/parse/clock-skew" "$out/parse/unavailable" "$out/sealed/"

# answer: a flags byte (0: the vector's request hash), then the body. The spec's signed answer
# (docs/protocol.md, Answer signatures), and the same fields in clear (v1) and sealed in mode 3,
# signed once with the test vector's answer key (a test key, never a stack's).
sig_hmac='K1joCV2F7+XW5XfREMrm12yi/vh62Hjhfbauoi/VW9OWP/veELAdPewKVrxzmX/Qf2iqvCYnHIjX+EeSTfe8Ow=='
sig_v1='8EHU6hZctbSkWvarxVZoRkiHQv1WtQ++7y0OLIAeQzoep1pT2BAX92izsJjWO2vMacNzfpLed6lPNqI9uuRCYw=='
sig_ecdh='4YP/TieJP67k9hzR27CVKUzrR6jqQ0HpQ02nFw5IVNdoCGEFNWhrsR/WYOqH4erGP6cmr7daS8P/DzAZ2Dd9dg=='
request_hash='\245\325\171\113\007\107\151\211\242\354\104\037\100\135\003\164\032\303\345\176\140\156\225\306\275\026\014\075\130\063\027\047'
# $1 file, $2 flags and hash (printf format), then the lines of the answer
flagged() {
    file=$1
    printf "$2" >"$file"
    shift 2
    printf '%s\n' "$@" >>"$file"
}
flagged "$out/answer/signed-hmac" '\000' username=acme device=$device sealed=$sealed_hmac host=$host \
    created=true answer_signature=$sig_hmac
flagged "$out/answer/signed-hmac-hash" "\\001$request_hash" username=acme device=$device \
    sealed=$sealed_hmac host=$host created=true answer_signature=$sig_hmac
flagged "$out/answer/signed-v1" '\000' username=acme device=$device \
    credential=Xq3kP9vL2mN8rT5wY7zA1bC4 host=$host created=true answer_signature=$sig_v1
flagged "$out/answer/signed-ecdh" '\000' username=acme device=$device sealed=$sealed_ecdh host=$host \
    created=true answer_signature=$sig_ecdh
# the other values of created and host, signed by nothing (only the accepting callback passes it)
flagged "$out/answer/existed-port" '\000' username=acme device=$device \
    credential=Xq3kP9vL2mN8rT5wY7zA1bC4 host=127.0.0.1:18090 created=false request_id=c0ffee \
    answer_signature=$sig_v1
flagged "$out/answer/clock-skew" '\000' error=clock_skew server_time=1764150412 request_id=c0ffee
printf '\000%s' BEbkvrsJVTiANGn39mDOrQWXj91l36YhFVMPWCJAAN3SmWYqOVaMp02n7TaXb1+Xre6vE9XF17zKCrCSxpVvpfY= \
    >"$out/answer/answer-key"

# open: the output buffer's size less one (0xff: 256 bytes), then sealed, username, device, host
envelope() {
    printf '\377%s\nacme\n%s\n%s' "$2" "$3" $host >"$out/open/$1"
}
envelope hmac $sealed_hmac $device
envelope ecdh $sealed_ecdh $device
envelope claim $sealed_claim ws_kit0001

# clock: little-endian integers in clock.c's order. $1 file, then value:bytes pairs
integers() {
    file=$1
    shift
    for field in "$@"; do
        value=${field%:*}
        bytes=${field#*:}
        while [ "$bytes" -gt 0 ]; do
            printf "\\$(printf %03o $((value & 255)))"
            value=$((value >> 8))
            bytes=$((bytes - 1))
        done
    done >"$out/clock/$file"
}
# the vector's clocks 412 s apart; retry 1, base 1 s, cap 60 s, retry_after=30; a 503 for an
# upstream_unavailable error with server_time
integers vector 1764150412:8 1764150000:8 412:8 1:4 1000:4 60000:4 30:4 3735928559:4 1:1 \
    503:8 0:1 2:1 2:1 1:1
# the extremes: server_time 0 against the largest clock, the most negative offset
integers extremes 0:8 -1:8 -9223372036854775808:8 -1:4 -1:4 -1:4 -1:4 -1:4 1:1 -1:8 255:1 1:1 \
    0:1 1:1
