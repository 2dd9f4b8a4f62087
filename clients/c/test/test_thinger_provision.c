/* Host unit tests of the core: the protocol test vector, request building, and the text response
 * parser against well-formed, malformed and random input. Plain C, no framework: each test
 * function is one case; the run ends with "N passed, N failed" and exits non-zero on failure. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/base64.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
#include "mbedtls/md.h"

#include "thinger_provision.h"

/* The protocol's test vector (docs/firmware.md). */
#define FLEET_KEY_B64 "dGhpbmdlci1wcm92aXNpb25lci10ZXN0LWZsZWV0LWtleS0wMDE="
#define DEVICE_ID "esp32_a1b2c3d4e5f6"
#define TIMESTAMP 1764150000u
#define DEVICE_KEY_B64 "slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA="
#define SIGNATURE_B64 "ZHYss//dxmIMMb/zLDJIbEOChjZeGQgm3h3mDEmz+yA="
#define REQUEST_BODY \
    "{\"device\":\"esp32_a1b2c3d4e5f6\",\"timestamp\":1764150000," \
    "\"signature\":\"ZHYss//dxmIMMb/zLDJIbEOChjZeGQgm3h3mDEmz+yA=\"}"

/* The sealing test vector (protocol v2, docs/protocol.md), shared with
 * test/lib/attestation/seal.test.ts. */
#define SIGNATURE_V2_B64 "zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA="
#define SEALED_CREDENTIAL "Vb3kq0TnW8xYz1LmP4rS7uHc"
#define SEALED_B64 "AQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRCewti+w3wMslflAGzlPfBBqmJ3DL2K"
#define SEALED_BODY \
    "username=acme\ndevice=esp32_a1b2c3d4e5f6\nsealed=" SEALED_B64 \
    "\nhost=backend.thinger.io\ncreated=true\n"
static const unsigned char SEAL_KEY[TPROV_SEAL_KEY_LEN] = {
    0x9d, 0x16, 0xcd, 0x77, 0x7e, 0xa2, 0x67, 0xc7, 0x5a, 0xf2, 0x2b, 0x64, 0x96, 0x45, 0x6f, 0x84,
    0x70, 0xa4, 0x66, 0x0d, 0xaa, 0xd5, 0x9c, 0xb7, 0xf6, 0x6c, 0x24, 0xa4, 0xa7, 0x3f, 0x99, 0x8d
};

#define CREDENTIAL "Xq3kP9vL2mN8rT5wY7zA1bC4"
#define SUCCESS_BODY \
    "username=acme\ndevice=esp32_a1b2c3d4e5f6\ncredential=" CREDENTIAL \
    "\nhost=backend.thinger.io\ncreated=true\n"

static int g_passed;
static int g_failed;
static int g_case_failures;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            g_case_failures++;                                                  \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                       \
    } while (0)

#define CHECK_STATUS(expr, expected)                                            \
    do {                                                                        \
        tprov_status_t got_ = (expr);                                           \
        if (got_ != (expected)) {                                               \
            g_case_failures++;                                                  \
            fprintf(stderr, "  %s:%d: %s gave %s, expected %s\n", __FILE__, __LINE__, #expr, \
                    tprov_status_name(got_), tprov_status_name(expected));      \
        }                                                                       \
    } while (0)

#define RUN(test) run(#test, test)

static void run(const char *name, void (*test)(void))
{
    g_case_failures = 0;
    test();
    if (g_case_failures == 0) {
        g_passed++;
        printf("ok   %s\n", name);
    } else {
        g_failed++;
        printf("FAIL %s\n", name);
    }
}

/* Parses text from an exact-size heap copy with no NUL after it, so that AddressSanitizer
 * (make sanitize) catches any read past len. */
static tprov_status_t parse_n(const char *text, size_t len, const char *expected_device,
                              tprov_response_t *out)
{
    char *copy = malloc(len == 0 ? 1 : len);
    tprov_status_t status;

    if (copy == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memcpy(copy, text, len);
    status = tprov_parse_response(len == 0 ? NULL : copy, len, expected_device, out);
    free(copy);
    return status;
}

static tprov_status_t parse(const char *text, tprov_response_t *out)
{
    return parse_n(text, strlen(text), NULL, out);
}

static int is_all_zero(const void *p, size_t len)
{
    const unsigned char *b = p;
    size_t i;

    for (i = 0; i < len; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static void repeat(char *out, char c, size_t n)
{
    memset(out, c, n);
    out[n] = '\0';
}

/* --- test vector and request building --- */

static void test_vector_device_key(void)
{
    char key[TPROV_DEVICE_KEY_B64_LEN + 1];

    CHECK_STATUS(tprov_derive_device_key(FLEET_KEY_B64, DEVICE_ID, key, sizeof key), TPROV_OK);
    CHECK(strcmp(key, DEVICE_KEY_B64) == 0);
}

static void test_vector_signature(void)
{
    char signature[TPROV_SIGNATURE_B64_LEN + 1];

    CHECK_STATUS(tprov_sign(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, signature, sizeof signature),
                 TPROV_OK);
    CHECK(strcmp(signature, SIGNATURE_B64) == 0);
}

static void test_vector_request_body(void)
{
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;

    CHECK_STATUS(tprov_build_request_body(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, body, sizeof body,
                                          &len),
                 TPROV_OK);
    CHECK(strcmp(body, REQUEST_BODY) == 0);
    CHECK(len == strlen(REQUEST_BODY));
    CHECK(len == 113);
}

static void test_longest_request_body_fits_the_documented_bound(void)
{
    char device[TPROV_DEVICE_ID_MAX_LEN + 1];
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;

    char fleet[32 + 1];
    tprov_request_options_t options;

    repeat(device, 'x', TPROV_DEVICE_ID_MAX_LEN);
    repeat(fleet, 'f', 32);
    memset(&options, 0, sizeof options);
    options.fleet = fleet;
    options.key_version = 999u;
    options.sealed = true;
    CHECK_STATUS(tprov_build_request_body_with(device, UINT64_MAX, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_OK);
    CHECK(len == TPROV_REQUEST_BODY_MAX_LEN);
    CHECK(strstr(body, "\"timestamp\":18446744073709551615,") != NULL);
}

static void test_fleet_and_key_version_are_sent_unsigned(void)
{
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;
    tprov_request_options_t options;
    const char *expected_tail = ",\"fleet\":\"workshop\",\"keyVersion\":2}";

    memset(&options, 0, sizeof options);
    options.fleet = "workshop";
    options.key_version = 2u;
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_OK);
    /* The same signature as the test vector: neither field is signed. */
    CHECK(strncmp(body, REQUEST_BODY, strlen(REQUEST_BODY) - 1) == 0);
    CHECK(strcmp(body + len - strlen(expected_tail), expected_tail) == 0);

    options.key_version = 1u;
    options.fleet = NULL;
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_OK);
    CHECK(strcmp(body, REQUEST_BODY) == 0);

    options.fleet = "Workshop";
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_ERR_REQUEST_OPTION);
    options.fleet = "abcdefghijklmnopqrstuvwxyz0123456";
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_ERR_REQUEST_OPTION);
    options.fleet = "ok";
    options.key_version = 1000u;
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_ERR_REQUEST_OPTION);
}

static void test_timestamp_zero_is_signed_as_0(void)
{
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;

    CHECK_STATUS(tprov_build_request_body(DEVICE_ID, 0, DEVICE_KEY_B64, body, sizeof body, &len),
                 TPROV_OK);
    CHECK(strstr(body, "\"timestamp\":0,") != NULL);
}

static void test_request_body_refuses_a_small_buffer_and_wipes_it(void)
{
    char body[sizeof REQUEST_BODY]; /* exactly the body and its NUL */
    size_t len = 99;

    CHECK_STATUS(tprov_build_request_body(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, body,
                                          sizeof body - 1, &len),
                 TPROV_ERR_BUFFER_TOO_SMALL);
    CHECK(len == 0);
    CHECK(is_all_zero(body, sizeof body - 1));
    CHECK_STATUS(tprov_build_request_body(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, body, sizeof body,
                                          &len),
                 TPROV_OK);
    CHECK_STATUS(tprov_build_request_body(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, body, 0, &len),
                 TPROV_ERR_BUFFER_TOO_SMALL);
}

static void test_small_key_and_signature_buffers_are_refused(void)
{
    char out[TPROV_DEVICE_KEY_B64_LEN + 1];

    CHECK_STATUS(tprov_derive_device_key(FLEET_KEY_B64, DEVICE_ID, out, sizeof out - 1),
                 TPROV_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(tprov_sign(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, out, sizeof out - 1),
                 TPROV_ERR_BUFFER_TOO_SMALL);
}

static void test_device_ids_are_validated(void)
{
    char longest[TPROV_DEVICE_ID_MAX_LEN + 2];
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len;
    static const char *const invalid[] = { "", "a b", "dev/1", "dev.1", "\"quote", "caf\xc3\xa9",
                                           "line\n", "tab\t" };
    size_t i;

    CHECK_STATUS(tprov_validate_device_id("A-z_09"), TPROV_OK);
    repeat(longest, 'a', TPROV_DEVICE_ID_MAX_LEN);
    CHECK_STATUS(tprov_validate_device_id(longest), TPROV_OK);
    repeat(longest, 'a', TPROV_DEVICE_ID_MAX_LEN + 1);
    CHECK_STATUS(tprov_validate_device_id(longest), TPROV_ERR_DEVICE_ID);
    CHECK_STATUS(tprov_build_request_body(longest, TIMESTAMP, DEVICE_KEY_B64, body, sizeof body,
                                          &len),
                 TPROV_ERR_DEVICE_ID);
    for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        CHECK_STATUS(tprov_validate_device_id(invalid[i]), TPROV_ERR_DEVICE_ID);
        CHECK_STATUS(tprov_build_request_body(invalid[i], TIMESTAMP, DEVICE_KEY_B64, body,
                                              sizeof body, &len),
                     TPROV_ERR_DEVICE_ID);
    }
    CHECK_STATUS(tprov_validate_device_id(NULL), TPROV_ERR_ARGUMENT);
}

static void test_malformed_device_keys_are_refused(void)
{
    char out[TPROV_SIGNATURE_B64_LEN + 1];
    static const char *const invalid[] = {
        "",
        "slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA",     /* padding missing */
        "slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA=\n",  /* a newline from a file */
        " slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA=",   /* leading space */
        "slJ_UknDHHGumvra-RjeJHZq2Cp87-EN3n7coIJFlxA=",    /* base64url, not base64 */
        "slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlx==",    /* 31 bytes */
        "c2hvcnQ=",                                        /* 5 bytes */
        FLEET_KEY_B64                                      /* the fleet key is not a device key */
    };
    size_t i;

    for (i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        CHECK_STATUS(tprov_sign(DEVICE_ID, TIMESTAMP, invalid[i], out, sizeof out), TPROV_ERR_KEY);
    }
    CHECK_STATUS(tprov_sign(DEVICE_ID, TIMESTAMP, NULL, out, sizeof out), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_sign(NULL, TIMESTAMP, DEVICE_KEY_B64, out, sizeof out), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_sign(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, NULL, 45), TPROV_ERR_ARGUMENT);
}

static void test_fleet_keys_outside_32_to_256_bytes_are_refused(void)
{
    char out[TPROV_DEVICE_KEY_B64_LEN + 1];
    /* base64 of 31 bytes, 32 bytes, 256 bytes and 257 bytes of 'A' (0x41 = "QUFB") */
    char b64[400];
    size_t i;

    /* 31 bytes: 10 groups of "QUFB" (30 bytes) + "QQ==" (1 byte) */
    b64[0] = '\0';
    for (i = 0; i < 10; i++) {
        strcat(b64, "QUFB");
    }
    strcat(b64, "QQ==");
    CHECK_STATUS(tprov_derive_device_key(b64, DEVICE_ID, out, sizeof out), TPROV_ERR_KEY);
    /* 32 bytes: 10 groups + "QUE=" (2 bytes) */
    b64[40] = '\0';
    strcat(b64, "QUE=");
    CHECK_STATUS(tprov_derive_device_key(b64, DEVICE_ID, out, sizeof out), TPROV_OK);
    /* 256 bytes: 85 groups (255 bytes) + "QQ==" */
    b64[0] = '\0';
    for (i = 0; i < 85; i++) {
        strcat(b64, "QUFB");
    }
    strcat(b64, "QQ==");
    CHECK_STATUS(tprov_derive_device_key(b64, DEVICE_ID, out, sizeof out), TPROV_OK);
    /* 257 bytes */
    b64[340] = '\0';
    strcat(b64, "QUE=");
    CHECK_STATUS(tprov_derive_device_key(b64, DEVICE_ID, out, sizeof out), TPROV_ERR_KEY);
    CHECK_STATUS(tprov_derive_device_key("not base64!", DEVICE_ID, out, sizeof out),
                 TPROV_ERR_KEY);
    CHECK(is_all_zero(out, sizeof out));
    CHECK_STATUS(tprov_derive_device_key(FLEET_KEY_B64, "bad id", out, sizeof out),
                 TPROV_ERR_DEVICE_ID);
}

/* --- parsing well-formed responses --- */

static void test_success_response_is_parsed(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse_n(SUCCESS_BODY, strlen(SUCCESS_BODY), DEVICE_ID, &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS);
    CHECK(strcmp(r.username, "acme") == 0);
    CHECK(strcmp(r.device, DEVICE_ID) == 0);
    CHECK(strcmp(r.credential, CREDENTIAL) == 0);
    CHECK(strcmp(r.host, "backend.thinger.io") == 0);
    CHECK(r.created);
    CHECK(!r.has_retry_after && !r.has_server_time);
    CHECK(r.error[0] == '\0');
}

static void test_host_may_carry_a_port(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c\nhost=acme.aws.thinger.io:25206\ncreated=true\n", &r),
                 TPROV_OK);
    CHECK(strcmp(r.host, "acme.aws.thinger.io:25206") == 0);
    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c\nhost=bad host\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
}

static void test_created_false_means_the_device_existed(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=acme\ndevice=d1\ncredential=abc\nhost=h.example\n"
                       "created=false\n",
                       &r),
                 TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS);
    CHECK(!r.created);
}

static void test_field_order_is_free(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("created=true\nhost=h\ncredential=c\ndevice=d\nusername=u\n", &r),
                 TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS);
}

static void test_values_split_at_the_first_equals_sign(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=a=b==\nhost=h\ncreated=true\n", &r),
                 TPROV_OK);
    CHECK(strcmp(r.credential, "a=b==") == 0);
}

/* Finding 9 of the security review: what the server sends is written to files and printed, so
 * it must follow the rules the service itself applies. */
static void test_usernames_and_hosts_follow_the_services_rules(void)
{
    static const char *const bad_usernames[] = { "jos\xc3\xa9", "a b", "<b>", "a/b", "a.b",
                                                 "\xe2\x80\xae" "evil" };
    static const char *const bad_hosts[] = { "h:", ":80", "h:0", "h:65536", "h:123456", "h:8a",
                                             "a:1:2", "h/evil", "h@evil", "[::1]", "h_x" };
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    char name[255];
    tprov_response_t r;
    size_t i;

    for (i = 0; i < sizeof bad_usernames / sizeof bad_usernames[0]; i++) {
        snprintf(body, sizeof body, "username=%s\ndevice=d\ncredential=c\nhost=h\ncreated=true\n",
                 bad_usernames[i]);
        CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE);
        CHECK(is_all_zero(&r, sizeof r));
    }
    for (i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        snprintf(body, sizeof body, "username=u\ndevice=d\ncredential=c\nhost=%s\ncreated=true\n",
                 bad_hosts[i]);
        CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE);
    }
    repeat(name, 'h', 254);
    snprintf(body, sizeof body, "username=u\ndevice=d\ncredential=c\nhost=%s\ncreated=true\n", name);
    CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("username=A-z_9\ndevice=d\ncredential=c\nhost=a.b-c:65535\ncreated=true\n",
                       &r),
                 TPROV_OK);
    CHECK(strcmp(r.username, "A-z_9") == 0 && strcmp(r.host, "a.b-c:65535") == 0);
}

static void test_unknown_keys_are_ignored(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("version=2\nusername=u\nx-trace.id=a b=c\ndevice=d\ncredential=c\n"
                       "expires_at=\nhost=h\ncreated=true\nversion=3\n",
                       &r),
                 TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS);
    CHECK_STATUS(parse("error=device_not_allowed\nmessage=not in the allow-list\n", &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR);
}

static void test_error_response_is_parsed(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("error=invalid_signature\n", &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR);
    CHECK(strcmp(r.error, "invalid_signature") == 0);
    CHECK(!r.has_retry_after && !r.has_server_time);
}

static void test_error_with_retry_after(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("error=upstream_unavailable\nretry_after=30\n", &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR);
    CHECK(strcmp(r.error, "upstream_unavailable") == 0);
    CHECK(r.has_retry_after && r.retry_after_secs == 30);
    CHECK_STATUS(parse("error=upstream_unavailable\nretry_after=4294967295\n", &r), TPROV_OK);
    CHECK(r.retry_after_secs == UINT32_MAX);
    CHECK_STATUS(parse("error=upstream_unavailable\nretry_after=0\n", &r), TPROV_OK);
    CHECK(r.has_retry_after && r.retry_after_secs == 0);
}

static void test_error_with_server_time(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("error=clock_skew\nserver_time=1764150123\n", &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR);
    CHECK(strcmp(r.error, "clock_skew") == 0);
    CHECK(r.has_server_time && r.server_time == 1764150123u);
    CHECK_STATUS(parse("error=clock_skew\nserver_time=253402300799\n", &r), TPROV_OK);
    CHECK(r.server_time == TPROV_SERVER_TIME_MAX);
}

/* A hostile server_time near the 64-bit limits: refused by the parser, and the clock arithmetic
 * saturates whatever it is given (make sanitize runs this under UBSan). */
static void test_hostile_server_time_cannot_overflow_the_clock(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("error=clock_skew\nserver_time=253402300800\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("error=clock_skew\nserver_time=18446744073709551615\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("error=clock_skew\nserver_time=9223372036854775808\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);

    CHECK(tprov_clock_offset(1764150300u, 1764150000u) == 300);
    CHECK(tprov_clock_offset(1764150000u, 1764150300u) == -300);
    CHECK(tprov_clock_offset(UINT64_MAX, 0u) == INT64_MAX);
    CHECK(tprov_clock_offset(0u, UINT64_MAX) == -INT64_MAX);
    CHECK(tprov_clock_offset((uint64_t)INT64_MAX + 1u, 0u) == INT64_MAX);
    CHECK(tprov_clock_offset(0u, (uint64_t)INT64_MAX + 1u) == -INT64_MAX);
    CHECK(tprov_clock_offset(UINT64_MAX, UINT64_MAX) == 0);

    CHECK(tprov_apply_clock_offset(1764150000u, 300) == 1764150300u);
    CHECK(tprov_apply_clock_offset(1764150000u, -300) == 1764149700u);
    CHECK(tprov_apply_clock_offset(UINT64_MAX, INT64_MAX) == UINT64_MAX);
    CHECK(tprov_apply_clock_offset(UINT64_MAX - 1u, 1) == UINT64_MAX);
    CHECK(tprov_apply_clock_offset(0u, INT64_MIN) == 0u);
    CHECK(tprov_apply_clock_offset(5u, -INT64_MAX) == 0u);
    CHECK(tprov_apply_clock_offset(UINT64_MAX, INT64_MIN) == UINT64_MAX - (uint64_t)INT64_MAX - 1u);
    CHECK(tprov_apply_clock_offset(0u, tprov_clock_offset(UINT64_MAX, 0u)) == (uint64_t)INT64_MAX);
}

/* --- sealed credentials (protocol v2) --- */

static tprov_status_t parse_sealed(const char *text, tprov_response_t *out)
{
    size_t len = strlen(text);
    char *copy = malloc(len);
    tprov_status_t status;

    if (copy == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memcpy(copy, text, len);
    status = tprov_parse_sealed_response(copy, len, DEVICE_ID, SEAL_KEY, out);
    free(copy);
    return status;
}

static void test_vector_sealed_request_and_seal_key(void)
{
    tprov_request_options_t options;
    unsigned char key[TPROV_SEAL_KEY_LEN];
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;

    memset(&options, 0, sizeof options);
    options.sealed = true;
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_OK);
    CHECK(strcmp(body, "{\"device\":\"esp32_a1b2c3d4e5f6\",\"timestamp\":1764150000,"
                       "\"signature\":\"" SIGNATURE_V2_B64 "\",\"version\":2}") == 0);
    CHECK_STATUS(tprov_derive_seal_key(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, key), TPROV_OK);
    CHECK(memcmp(key, SEAL_KEY, sizeof key) == 0);
    CHECK_STATUS(tprov_derive_seal_key(DEVICE_ID, TIMESTAMP, "short", key), TPROV_ERR_KEY);
    CHECK(is_all_zero(key, sizeof key));
}

static void test_vector_sealed_credential_opens(void)
{
    char credential[TPROV_CREDENTIAL_MAX_LEN + 1];
    char small[24];

    CHECK_STATUS(tprov_open_sealed(SEALED_B64, strlen(SEALED_B64), SEAL_KEY, "acme", DEVICE_ID,
                                   "backend.thinger.io", credential, sizeof credential),
                 TPROV_OK);
    CHECK(strcmp(credential, SEALED_CREDENTIAL) == 0);
    CHECK_STATUS(tprov_open_sealed(SEALED_B64, strlen(SEALED_B64), SEAL_KEY, "acme", DEVICE_ID,
                                   "backend.thinger.io", small, sizeof small),
                 TPROV_ERR_BUFFER_TOO_SMALL);
}

static void test_sealed_response_is_parsed_and_opened(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse_sealed(SEALED_BODY, &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS);
    CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    CHECK(strcmp(r.username, "acme") == 0 && strcmp(r.host, "backend.thinger.io") == 0);
    /* A v1 parser finds no credential in it. */
    CHECK_STATUS(parse(SEALED_BODY, &r), TPROV_ERR_RESPONSE_MISSING);
    /* Errors parse as before. */
    CHECK_STATUS(parse_sealed("error=sealing_required\n", &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR && strcmp(r.error, "sealing_required") == 0);
}

static void test_sealed_response_refuses_swapped_fields_and_other_keys(void)
{
    static const char *const swapped[] = {
        "username=mallory\ndevice=esp32_a1b2c3d4e5f6\nsealed=" SEALED_B64
        "\nhost=backend.thinger.io\ncreated=true\n",
        "username=acme\ndevice=esp32_a1b2c3d4e5f6\nsealed=" SEALED_B64
        "\nhost=evil.example.com\ncreated=true\n",
    };
    unsigned char other_key[TPROV_SEAL_KEY_LEN];
    tprov_response_t r;
    size_t i;
    size_t len = strlen(SEALED_BODY);

    for (i = 0; i < sizeof swapped / sizeof swapped[0]; i++) {
        CHECK_STATUS(parse_sealed(swapped[i], &r), TPROV_ERR_SEALED);
        CHECK(is_all_zero(&r, sizeof r));
    }
    /* The answer to the same request signed one second later: another key. */
    CHECK_STATUS(tprov_derive_seal_key(DEVICE_ID, TIMESTAMP + 1u, DEVICE_KEY_B64, other_key),
                 TPROV_OK);
    CHECK_STATUS(tprov_parse_sealed_response(SEALED_BODY, len, DEVICE_ID, other_key, &r),
                 TPROV_ERR_SEALED);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(tprov_parse_sealed_response(SEALED_BODY, len, DEVICE_ID, NULL, &r),
                 TPROV_ERR_ARGUMENT);
}

static void test_every_changed_character_of_a_sealed_credential_is_refused(void)
{
    char body[sizeof SEALED_BODY];
    const char *at = strstr(SEALED_BODY, SEALED_B64);
    size_t offset = (size_t)(at - SEALED_BODY);
    tprov_response_t r;
    size_t i;

    for (i = 0; i < strlen(SEALED_B64); i++) {
        memcpy(body, SEALED_BODY, sizeof body);
        body[offset + i] = body[offset + i] == 'A' ? 'B' : 'A';
        CHECK_STATUS(parse_sealed(body, &r), TPROV_ERR_SEALED);
    }
    memcpy(body, SEALED_BODY, sizeof body);
    memmove(body + offset + 4, body + offset + 8, sizeof body - offset - 8); /* 3 bytes shorter */
    CHECK_STATUS(parse_sealed(body, &r), TPROV_ERR_SEALED);
}

static void test_sealed_request_refuses_a_credential_in_clear(void)
{
    tprov_response_t r;

    /* A machine in the middle that answers in clear (a downgrade) is refused. */
    CHECK_STATUS(parse_sealed(SUCCESS_BODY, &r), TPROV_ERR_RESPONSE_NOT_SEALED);
    CHECK_STATUS(parse_sealed("username=acme\ndevice=esp32_a1b2c3d4e5f6\ncredential=c\nsealed="
                              SEALED_B64 "\nhost=backend.thinger.io\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_NOT_SEALED);
    CHECK_STATUS(parse_sealed("username=acme\ndevice=esp32_a1b2c3d4e5f6\nhost=backend.thinger.io"
                              "\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_MISSING);
    CHECK_STATUS(parse_sealed("username=acme\ndevice=esp32_a1b2c3d4e5f6\nsealed=AQ*=\n"
                              "host=backend.thinger.io\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK(tprov_next_step(200, TPROV_ERR_RESPONSE_NOT_SEALED, &r) == TPROV_NEXT_GIVE_UP);
    CHECK(tprov_next_step(201, TPROV_ERR_SEALED, &r) == TPROV_NEXT_GIVE_UP);
}

static void test_error_response_carries_no_credentials(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("error=internal_error\nusername=u\ndevice=d\ncredential=secret\nhost=h\n"
                       "created=true\n",
                       &r),
                 TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR);
    CHECK(is_all_zero(r.credential, sizeof r.credential));
    CHECK(r.username[0] == '\0' && r.device[0] == '\0' && r.host[0] == '\0');
}

static void test_crlf_line_endings_are_accepted(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=u\r\ndevice=d\r\ncredential=c\r\nhost=h\r\ncreated=true\r\n", &r),
                 TPROV_OK);
    CHECK(strcmp(r.username, "u") == 0 && strcmp(r.credential, "c") == 0);
    CHECK(r.created);
    CHECK_STATUS(parse("error=clock_skew\r\nserver_time=5\n", &r), TPROV_OK);
    CHECK(r.server_time == 5);
}

static void test_maximum_lengths_are_accepted(void)
{
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    char username[TPROV_USERNAME_MAX_LEN + 1];
    char device[TPROV_DEVICE_ID_MAX_LEN + 1];
    char credential[TPROV_CREDENTIAL_MAX_LEN + 1];
    char host[TPROV_HOST_MAX_LEN + 1];
    tprov_response_t r;

    repeat(username, 'u', TPROV_USERNAME_MAX_LEN);
    repeat(device, 'd', TPROV_DEVICE_ID_MAX_LEN);
    repeat(credential, 'c', TPROV_CREDENTIAL_MAX_LEN);
    repeat(host, 'h', TPROV_HOST_MAX_LEN);
    memcpy(host + TPROV_HOST_MAX_LEN - 6, ":65535", 6); /* 253 characters of name, and a port */
    snprintf(body, sizeof body, "username=%s\ndevice=%s\ncredential=%s\nhost=%s\ncreated=true\n",
             username, device, credential, host);
    CHECK_STATUS(parse(body, &r), TPROV_OK);
    CHECK(strcmp(r.username, username) == 0);
    CHECK(strcmp(r.device, device) == 0);
    CHECK(strcmp(r.credential, credential) == 0);
    CHECK(strcmp(r.host, host) == 0);
}

static void test_body_of_exactly_the_maximum_size_is_accepted(void)
{
    char body[TPROV_RESPONSE_MAX_LEN + 2];
    const char *fields = "username=u\ndevice=d\ncredential=c\nhost=h\ncreated=true\npad=";
    size_t used = strlen(fields);
    tprov_response_t r;

    memcpy(body, fields, used);
    memset(body + used, 'p', TPROV_RESPONSE_MAX_LEN - used - 1);
    body[TPROV_RESPONSE_MAX_LEN - 1] = '\n';
    CHECK_STATUS(parse_n(body, TPROV_RESPONSE_MAX_LEN, NULL, &r), TPROV_OK);
    body[TPROV_RESPONSE_MAX_LEN - 1] = 'p';
    body[TPROV_RESPONSE_MAX_LEN] = '\n';
    CHECK_STATUS(parse_n(body, TPROV_RESPONSE_MAX_LEN + 1, NULL, &r),
                 TPROV_ERR_RESPONSE_TOO_LARGE);
}

/* --- malformed responses --- */

static void test_empty_body_is_refused(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse_n("", 0, NULL, &r), TPROV_ERR_RESPONSE_EMPTY);
    CHECK(r.kind == TPROV_RESPONSE_NONE);
}

static void test_truncated_body_is_refused(void)
{
    tprov_response_t r;
    size_t cut;

    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c\nhost=h\ncreated=true", &r),
                 TPROV_ERR_RESPONSE_TRUNCATED);
    CHECK_STATUS(parse("error=clock_skew\nserver_time=17641", &r), TPROV_ERR_RESPONSE_TRUNCATED);
    /* Every proper prefix of a good body is refused: cut at a line end, a field is missing;
     * anywhere else, the last line has no newline. */
    for (cut = 1; cut < strlen(SUCCESS_BODY); cut++) {
        tprov_status_t status = parse_n(SUCCESS_BODY, cut, NULL, &r);

        CHECK(status == TPROV_ERR_RESPONSE_TRUNCATED || status == TPROV_ERR_RESPONSE_MISSING);
        CHECK(is_all_zero(&r, sizeof r));
    }
}

static void test_oversized_body_is_refused(void)
{
    static char body[4096];
    tprov_response_t r;

    memset(body, 'a', sizeof body);
    memcpy(body, "pad=", 4);
    body[sizeof body - 1] = '\n';
    CHECK_STATUS(parse_n(body, sizeof body, NULL, &r), TPROV_ERR_RESPONSE_TOO_LARGE);
}

static void test_oversized_values_are_refused(void)
{
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    char big[TPROV_HOST_MAX_LEN + 2]; /* the longest field bound */
    tprov_response_t r;

    repeat(big, 'x', TPROV_USERNAME_MAX_LEN + 1);
    snprintf(body, sizeof body, "username=%s\ndevice=d\ncredential=c\nhost=h\ncreated=true\n", big);
    CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE_TOO_LONG);

    repeat(big, 'x', TPROV_DEVICE_ID_MAX_LEN + 1);
    snprintf(body, sizeof body, "username=u\ndevice=%s\ncredential=c\nhost=h\ncreated=true\n", big);
    CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE_TOO_LONG);

    repeat(big, 'x', TPROV_CREDENTIAL_MAX_LEN + 1);
    snprintf(body, sizeof body, "username=u\ndevice=d\ncredential=%s\nhost=h\ncreated=true\n", big);
    CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE_TOO_LONG);
    CHECK(is_all_zero(&r, sizeof r));

    repeat(big, 'x', TPROV_HOST_MAX_LEN + 1);
    snprintf(body, sizeof body, "username=u\ndevice=d\ncredential=c\nhost=%s\ncreated=true\n", big);
    CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE_TOO_LONG);

    repeat(big, 'x', TPROV_ERROR_CODE_MAX_LEN + 1);
    snprintf(body, sizeof body, "error=%s\n", big);
    CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE_TOO_LONG);
}

static void test_each_missing_success_field_is_refused(void)
{
    static const char *const lines[] = { "username=u\n", "device=d\n", "credential=c\n",
                                         "host=h\n", "created=true\n" };
    char body[256];
    tprov_response_t r;
    size_t skip;
    size_t i;

    for (skip = 0; skip < 5; skip++) {
        body[0] = '\0';
        for (i = 0; i < 5; i++) {
            if (i != skip) {
                strcat(body, lines[i]);
            }
        }
        CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_MISSING);
        CHECK(r.kind == TPROV_RESPONSE_NONE);
    }
    CHECK_STATUS(parse("unknown=1\n", &r), TPROV_ERR_RESPONSE_MISSING);
}

static void test_bad_created_values_are_refused(void)
{
    static const char *const values[] = { "yes", "TRUE", "True", "1", "", "true ", " false",
                                          "falsey" };
    char body[128];
    tprov_response_t r;
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(body, sizeof body, "username=u\ndevice=d\ncredential=c\nhost=h\ncreated=%s\n",
                 values[i]);
        CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE);
    }
}

static void test_duplicate_known_keys_are_refused(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=u\nusername=v\ndevice=d\ncredential=c\nhost=h\ncreated=true\n",
                       &r),
                 TPROV_ERR_RESPONSE_DUPLICATE);
    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c\ncredential=c\nhost=h\ncreated=true\n",
                       &r),
                 TPROV_ERR_RESPONSE_DUPLICATE);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(parse("error=a\nerror=b\n", &r), TPROV_ERR_RESPONSE_DUPLICATE);
    CHECK_STATUS(parse("error=a\nretry_after=1\nretry_after=1\n", &r),
                 TPROV_ERR_RESPONSE_DUPLICATE);
    CHECK_STATUS(parse("error=clock_skew\nserver_time=1\nserver_time=2\n", &r),
                 TPROV_ERR_RESPONSE_DUPLICATE);
}

static void test_bad_numbers_are_refused(void)
{
    static const char *const values[] = { "", "abc", "-1", "+1", "1.5", " 5", "5 ", "0x10",
                                          "4294967296", "99999999999999999999" };
    char body[128];
    tprov_response_t r;
    size_t i;

    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(body, sizeof body, "error=upstream_unavailable\nretry_after=%s\n", values[i]);
        CHECK_STATUS(parse(body, &r), TPROV_ERR_RESPONSE_VALUE);
    }
    CHECK_STATUS(parse("error=clock_skew\nserver_time=18446744073709551616\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("error=clock_skew\nserver_time=soon\n", &r), TPROV_ERR_RESPONSE_VALUE);
}

static void test_bad_field_values_are_refused(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=u\ndevice=d v\ncredential=c\nhost=h\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c d\nhost=h\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c\nhost=h/evil\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=c\nhost=h@evil\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("username=\ndevice=d\ncredential=c\nhost=h\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("username=u\ndevice=d\ncredential=\nhost=h\ncreated=true\n", &r),
                 TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("error=Clock_Skew\n", &r), TPROV_ERR_RESPONSE_VALUE);
    CHECK_STATUS(parse("error=\n", &r), TPROV_ERR_RESPONSE_VALUE);
}

static void test_lines_that_are_not_key_value_are_refused(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse("username=u\ngarbage\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("username=u\n\ndevice=d\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("=value\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("user name=u\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("<html><meta charset=\"utf-8\">\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("{\"error\":{\"code\":\"clock_skew\"}}\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("\xef\xbb\xbf" "error=x\n", &r), TPROV_ERR_RESPONSE_SYNTAX); /* UTF-8 BOM */
}

static void test_control_bytes_and_stray_cr_are_refused(void)
{
    tprov_response_t r;
    static const char with_nul[] = "error=a\0b\n";

    CHECK_STATUS(parse_n(with_nul, sizeof with_nul - 1, NULL, &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("error=a\rb\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("error=ab\r\r\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("error=a\tb\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("note=\x1b[31m\nerror=a\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("error=a\x7f\n", &r), TPROV_ERR_RESPONSE_SYNTAX);
    CHECK_STATUS(parse("error=a\r", &r), TPROV_ERR_RESPONSE_TRUNCATED); /* old Mac line end */
}

static void test_credentials_for_another_device_are_refused(void)
{
    tprov_response_t r;

    CHECK_STATUS(parse_n(SUCCESS_BODY, strlen(SUCCESS_BODY), "esp32_000000000000", &r),
                 TPROV_ERR_RESPONSE_DEVICE_MISMATCH);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(parse_n(SUCCESS_BODY, strlen(SUCCESS_BODY), "esp32_a1b2c3d4e5f", &r),
                 TPROV_ERR_RESPONSE_DEVICE_MISMATCH);
    /* An error names no device, so there is nothing to compare. */
    CHECK_STATUS(parse_n("error=x\n", 8, "esp32_000000000000", &r), TPROV_OK);
}

static void test_null_arguments_are_refused(void)
{
    tprov_response_t r;

    CHECK_STATUS(tprov_parse_response(NULL, 5, NULL, &r), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_parse_response("x=1\n", 4, NULL, NULL), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_parse_response(NULL, 0, NULL, &r), TPROV_ERR_RESPONSE_EMPTY);
}

/* --- what to do next, and when --- */

static tprov_next_t next_for(long http_status, const char *body)
{
    tprov_response_t r;
    tprov_status_t status = tprov_parse_response(body, strlen(body), NULL, &r);

    return tprov_next_step(http_status, status, &r);
}

static void test_next_step_follows_the_retry_rules(void)
{
    CHECK(next_for(201, SUCCESS_BODY) == TPROV_NEXT_STORE_CREDENTIALS);
    CHECK(next_for(200, SUCCESS_BODY) == TPROV_NEXT_STORE_CREDENTIALS);
    CHECK(next_for(202, SUCCESS_BODY) == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(500, SUCCESS_BODY) == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(401, "error=clock_skew\nserver_time=1764150000\n") ==
          TPROV_NEXT_RETRY_WITH_SERVER_TIME);
    CHECK(next_for(401, "error=clock_skew\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(401, "error=replayed\nserver_time=1764150000\n") ==
          TPROV_NEXT_RETRY_WITH_SERVER_TIME);
    CHECK(next_for(401, "error=replayed\nretry_after=2\n") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(401, "error=replayed\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(401, "error=invalid_signature\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(403, "error=device_not_allowed\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(400, "error=invalid_request\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(413, "error=payload_too_large\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(415, "error=unsupported_media_type\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(503, "error=upstream_unavailable\nretry_after=30\n") ==
          TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(503, "error=upstream_unavailable\n") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(429, "error=too_many_requests\n") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(502, "error=upstream_error\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(500, "error=internal_error\n") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(500, "error=internal_error\nretry_after=5\n") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(200, "error=internal_error\n") == TPROV_NEXT_GIVE_UP);
    /* Answers that are not the protocol: gateways, proxies, the network. */
    CHECK(tprov_next_step(0, TPROV_ERR_RESPONSE_EMPTY, NULL) == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(504, "{\"message\":\"Endpoint request timed out\"}") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(502, "<html>Bad Gateway</html>\n") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(429, "{\"message\":\"Too Many Requests\"}") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(503, "") == TPROV_NEXT_RETRY_LATER);
    CHECK(next_for(404, "{\"message\":\"Not Found\"}") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(200, "{\"username\":\"acme\"}") == TPROV_NEXT_GIVE_UP);
    CHECK(next_for(201, "username=u\ndevice=d\n") == TPROV_NEXT_GIVE_UP);
}

static void test_backoff_has_full_jitter_within_an_exponential_cap(void)
{
    uint32_t attempt;

    /* With the largest random value the delay is the ceiling itself. */
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, false, 0, UINT32_MAX) <= 1000);
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, false, 0, 1000) == 1000);
    CHECK(tprov_retry_delay_ms(2, 1000, 60000, false, 0, 2000) == 2000);
    CHECK(tprov_retry_delay_ms(3, 1000, 60000, false, 0, 4000) == 4000);
    CHECK(tprov_retry_delay_ms(3, 1000, 60000, false, 0, 4001) == 0);
    CHECK(tprov_retry_delay_ms(7, 1000, 60000, false, 0, 60000) == 60000);
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, false, 0, 0) == 0);
    for (attempt = 0; attempt < 100; attempt++) {
        CHECK(tprov_retry_delay_ms(attempt, 1000, 60000, false, 0, 0xDEADBEEFu) <= 60000);
        CHECK(tprov_retry_delay_ms(attempt, 0, 60000, false, 0, 0xDEADBEEFu) == 0);
    }
    CHECK(tprov_retry_delay_ms(UINT32_MAX, UINT32_MAX, UINT32_MAX, false, 0, UINT32_MAX) ==
          UINT32_MAX);
}

static void test_retry_after_comes_first_and_is_clamped(void)
{
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, true, 30, 0) == 30000);
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, true, 30, 500) == 30500);
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, true, 0, 0) == 0);
    CHECK(tprov_retry_delay_ms(1, 1000, 60000, true, UINT32_MAX, 0) ==
          TPROV_RETRY_AFTER_MAX_SECS * 1000u);
    CHECK(tprov_retry_delay_ms(40, UINT32_MAX, UINT32_MAX, true, UINT32_MAX, UINT32_MAX) ==
          UINT32_MAX);
}

/* --- the rest --- */

static void test_status_names_are_distinct(void)
{
    int a;
    int b;

    for (a = TPROV_OK; a <= TPROV_ERR_ANSWER_KEY_REQUIRED; a++) {
        CHECK(strncmp(tprov_status_name((tprov_status_t)a), "TPROV_", 6) == 0);
        CHECK(strcmp(tprov_status_name((tprov_status_t)a), "TPROV_UNKNOWN") != 0);
        for (b = a + 1; b <= TPROV_ERR_ANSWER_KEY_REQUIRED; b++) {
            CHECK(strcmp(tprov_status_name((tprov_status_t)a),
                         tprov_status_name((tprov_status_t)b)) != 0);
        }
    }
    CHECK(strcmp(tprov_status_name(TPROV_ERR_KEY), "TPROV_ERR_KEY") == 0);
    CHECK(strcmp(tprov_status_name(TPROV_ERR_ANSWER_SIGNATURE), "TPROV_ERR_ANSWER_SIGNATURE") == 0);
    CHECK(strcmp(tprov_status_name((tprov_status_t)999), "TPROV_UNKNOWN") == 0);
}

static void test_memzero_clears_every_byte(void)
{
    unsigned char buf[37];

    memset(buf, 0xA5, sizeof buf);
    tprov_memzero(buf, sizeof buf);
    CHECK(is_all_zero(buf, sizeof buf));
    tprov_memzero(NULL, 0);
}

static uint32_t g_rng = 0x2545F491u;

static uint32_t next_random(void)
{
    /* xorshift32: deterministic, so a failure reproduces */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}

static int is_terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

/* Mutated and random bodies: the parser must return a defined status, leave nothing behind on
 * failure, and on success hold NUL-terminated fields that passed their checks. */
static void test_parser_survives_mutated_and_random_input(void)
{
    static const char *const seeds[] = { SUCCESS_BODY, "error=clock_skew\nserver_time=17\n",
                                         "error=upstream_unavailable\nretry_after=30\n",
                                         SEALED_BODY };
    char body[TPROV_RESPONSE_MAX_LEN + 16];
    tprov_response_t r;
    int i;

    for (i = 0; i < 30000; i++) {
        size_t len;
        int edits;
        tprov_status_t status;

        if (i % 10 == 0) {
            size_t k;

            len = next_random() % sizeof body;
            for (k = 0; k < len; k++) {
                body[k] = (char)(next_random() & 0xFFu);
            }
        } else {
            const char *seed = seeds[next_random() % 4u];

            len = strlen(seed);
            memcpy(body, seed, len);
            for (edits = 1 + (int)(next_random() % 4u); edits > 0; edits--) {
                size_t at = next_random() % len;
                uint32_t what = next_random() % 4u;

                if (what == 0) {
                    body[at] = (char)(next_random() & 0xFFu);
                } else if (what == 1) {
                    body[at] = "=\n\r\0a0"[next_random() % 6u];
                } else if (what == 2 && len > 1) {
                    len = at + 1; /* truncate */
                } else if (len + 8 < sizeof body) {
                    memmove(body + at + 8, body + at, len - at); /* grow a value */
                    memset(body + at, 'z', 8);
                    len += 8;
                }
            }
        }
        if (i % 7 == 3) {
            char *copy = malloc(len == 0 ? 1 : len);

            if (copy == NULL) {
                exit(2);
            }
            memcpy(copy, body, len);
            status = tprov_parse_sealed_response(len == 0 ? NULL : copy, len, DEVICE_ID, SEAL_KEY,
                                                 &r);
            free(copy);
        } else {
            status = parse_n(body, len, (i & 1) ? DEVICE_ID : NULL, &r);
        }
        CHECK(strncmp(tprov_status_name(status), "TPROV_", 6) == 0);
        CHECK(strcmp(tprov_status_name(status), "TPROV_UNKNOWN") != 0);
        if (status != TPROV_OK) {
            CHECK(is_all_zero(&r, sizeof r));
            continue;
        }
        CHECK(r.kind == TPROV_RESPONSE_SUCCESS || r.kind == TPROV_RESPONSE_ERROR);
        CHECK(is_terminated(r.username, sizeof r.username));
        CHECK(is_terminated(r.credential, sizeof r.credential));
        CHECK(is_terminated(r.host, sizeof r.host));
        CHECK(is_terminated(r.error, sizeof r.error));
        if (r.kind == TPROV_RESPONSE_SUCCESS) {
            CHECK(tprov_validate_device_id(r.device) == TPROV_OK);
            CHECK(r.credential[0] != '\0');
        } else {
            CHECK(r.error[0] != '\0');
            CHECK(r.credential[0] == '\0');
        }
        if (g_case_failures > 0) {
            fprintf(stderr, "  failing input %d, %zu bytes\n", i, len);
            return;
        }
    }
}

/* --- keys behind callbacks, X.509 requests and ECDH-sealed answers --- */

/* The X.509 test vector (docs/protocol.md, test/support/x509-vector.ts). */
static const unsigned char X509_DEVICE_D[TPROV_P256_SCALAR_LEN] = {
    0x72, 0x84, 0xac, 0x89, 0x62, 0x18, 0xef, 0x99, 0x16, 0x91, 0x5d, 0x16, 0x51, 0x8b, 0xeb, 0x2f,
    0xde, 0x42, 0x28, 0x25, 0x84, 0xcc, 0x3f, 0x2a, 0x1e, 0x5f, 0xa9, 0xdc, 0x28, 0x28, 0xfa, 0x83
};
#define X509_CERTIFICATE_B64                                                                    \
    "MIIB0TCCAXagAwIBAgICEAEwCgYIKoZIzj0EAwIwTjEcMBoGA1UECgwTdGhpbmdlci1wcm92aXNpb25lcjEuMCwGA1U" \
    "EAwwldGhpbmdlci1wcm92aXNpb25lciBMT0NBTCBERVYgT05MWSBDQTAeFw0yNTAxMDEwMDAwMDBaFw00OTEyMzEyMz" \
    "U5NTlaMB0xGzAZBgNVBAMMEmVzcDMyX2ExYjJjM2Q0ZTVmNjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEpwwWq2Q" \
    "HEBnLOWAXucJjKZddW8KsWVsrwnHIfcv37sgI8rWSDJd9cQ8deuO2yRJSFi+wENrdVsO3ZXFKoubuCjdTBzMAwGA1Ud" \
    "EwEB/wQCMAAwHQYDVR0OBBYEFJr64AvDmjBZRPKcSR45ZGkaOxfrMB8GA1UdIwQYMBaAFMCdYuok3/bbLE/K0P+8+wB" \
    "hYeUFMA4GA1UdDwEB/wQEAwIDiDATBgNVHSUEDDAKBggrBgEFBQcDAjAKBggqhkjOPQQDAgNJADBGAiEAqlf+vtMvHl" \
    "+jqpOY59OXEQnoen4ZlJgQRZbLqaLdX5gCIQCJ4heoBdRVPP741nXjS4FhJuDuRrL/NFIIJFHhwFwdeg=="
#define ECDH_SEALED_B64                                                                         \
    "AQMEl1bELjGsgI7WjwzAmGgW0mFMRwEKT0Pqy6NmP7buMjiziYCa0b5alkpe41o9ltrvS5ixtrdP4+IdoNyuz6JdLA" \
    "ABAgMEBQYHCAkKC2+DmAyfADnKSwBgUKVly8cl7aSPi0xVo+zaRumDRCMk+AqhYEcGNBM="
#define ECDH_SEALED_BODY \
    "username=acme\ndevice=esp32_a1b2c3d4e5f6\nsealed=" ECDH_SEALED_B64 \
    "\nhost=backend.thinger.io\ncreated=true\n"

/* Blinding randomness for the tests: any bytes will do, the results do not depend on them. */
static int test_rng(void *ctx, unsigned char *out, size_t len)
{
    size_t i;

    (void)ctx;
    for (i = 0; i < len; i++) {
        out[i] = (unsigned char)rand();
    }
    return 0;
}

static size_t decode_b64(const char *b64, unsigned char *out, size_t out_size)
{
    size_t len = 0;

    if (mbedtls_base64_decode(out, out_size, &len, (const unsigned char *)b64, strlen(b64)) != 0) {
        fprintf(stderr, "bad base64 in a test\n");
        exit(2);
    }
    return len;
}

/* The value of "name":"…" in a JSON body, into out. */
static int json_string(const char *body, const char *name, char *out, size_t out_size)
{
    char pattern[48];
    const char *start;
    const char *end;

    snprintf(pattern, sizeof pattern, "\"%s\":\"", name);
    start = strstr(body, pattern);
    if (start == NULL) {
        return -1;
    }
    start += strlen(pattern);
    end = strchr(start, '"');
    if (end == NULL || (size_t)(end - start) >= out_size) {
        return -1;
    }
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return 0;
}

/* Verifies a P-256 r || s signature of message with the public key of d. */
static int p256_verifies(const unsigned char d[32], const char *message,
                         const unsigned char *signature, size_t signature_len)
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi scalar;
    mbedtls_mpi r;
    mbedtls_mpi s;
    unsigned char digest[32];
    int rc;

    if (signature_len != 64) {
        return 0;
    }
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&scalar);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    rc = rc != 0 ? rc : mbedtls_mpi_read_binary(&scalar, d, 32);
    rc = rc != 0 ? rc : mbedtls_ecp_mul(&grp, &q, &scalar, &grp.G, test_rng, NULL);
    rc = rc != 0 ? rc : mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                                   (const unsigned char *)message, strlen(message), digest);
    rc = rc != 0 ? rc : mbedtls_mpi_read_binary(&r, signature, 32);
    rc = rc != 0 ? rc : mbedtls_mpi_read_binary(&s, signature + 32, 32);
    rc = rc != 0 ? rc : mbedtls_ecdsa_verify(&grp, digest, sizeof digest, &q, &r, &s);
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&scalar);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc == 0;
}

static void vector_p256_key(tprov_key_t *key, tprov_p256_key_t *storage)
{
    if (tprov_key_from_p256(key, storage, X509_DEVICE_D, test_rng, NULL) != TPROV_OK) {
        fprintf(stderr, "the vector's P-256 key was refused\n");
        exit(2);
    }
}

/* --- answer signatures (docs/protocol.md, Answer signatures) --- */

/* The answer key of the test vector: d = SHA-256("thinger-provisioner test answer key"). */
static const unsigned char ANSWER_D[TPROV_P256_SCALAR_LEN] = {
    0x60, 0x2a, 0x81, 0x20, 0xa9, 0xe8, 0x2d, 0xc1, 0x6d, 0x2c, 0x08, 0xd1, 0x62, 0x20, 0xa0, 0x0b,
    0xd7, 0xb8, 0x0a, 0x54, 0xa3, 0xe1, 0x67, 0x43, 0x5d, 0x20, 0x35, 0x54, 0x94, 0xa0, 0xdd, 0x2c
};
static const unsigned char ANSWER_KEY[TPROV_P256_POINT_LEN] = {
    0x04, 0x46, 0xe4, 0xbe, 0xbb, 0x09, 0x55, 0x38, 0x80, 0x34, 0x69, 0xf7, 0xf6, 0x60, 0xce, 0xad,
    0x05, 0x97, 0x8f, 0xdd, 0x65, 0xdf, 0xa6, 0x21, 0x15, 0x53, 0x0f, 0x58, 0x22, 0x40, 0x00, 0xdd,
    0xd2, 0x99, 0x66, 0x2a, 0x39, 0x56, 0x8c, 0xa7, 0x4d, 0xa7, 0xed, 0x36, 0x97, 0x6f, 0x5f, 0x97,
    0xad, 0xee, 0xaf, 0x13, 0xd5, 0xc5, 0xd7, 0xbc, 0xca, 0x0a, 0xb0, 0x92, 0xc6, 0x95, 0x6f, 0xa5,
    0xf6
};
#define ANSWER_KEY_B64 \
    "BEbkvrsJVTiANGn39mDOrQWXj91l36YhFVMPWCJAAN3SmWYqOVaMp02n7TaXb1+Xre6vE9XF17zKCrCSxpVvpfY="
/* Another deployment's key (or the next one, during a rotation): SHA-256("thinger-provisioner
 * other answer key"). */
static const unsigned char OTHER_ANSWER_D[TPROV_P256_SCALAR_LEN] = {
    0x64, 0xc2, 0x19, 0xed, 0xd0, 0x35, 0xf6, 0x19, 0x6e, 0xd7, 0xde, 0x83, 0x82, 0x4f, 0x28, 0x42,
    0xce, 0x12, 0x4b, 0x89, 0xfc, 0x32, 0x03, 0x36, 0xfb, 0x5c, 0xdd, 0x36, 0x84, 0x28, 0xf6, 0xbc
};
/* The request of the sealing vector (125 bytes) and its SHA-256. */
#define REQUEST_BODY_V2                                                                  \
    "{\"device\":\"esp32_a1b2c3d4e5f6\",\"timestamp\":1764150000,"                       \
    "\"signature\":\"zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA=\",\"version\":2}"
static const unsigned char g_request_hash[TPROV_REQUEST_HASH_LEN] = {
    0xa5, 0xd5, 0x79, 0x4b, 0x07, 0x47, 0x69, 0x89, 0xa2, 0xec, 0x44, 0x1f, 0x40, 0x5d, 0x03, 0x74,
    0x1a, 0xc3, 0xe5, 0x7e, 0x60, 0x6e, 0x95, 0xc6, 0xbd, 0x16, 0x0c, 0x3d, 0x58, 0x33, 0x17, 0x27
};
/* One valid signature of the vector's answer (ECDSA is randomized: any valid one verifies). */
#define ANSWER_SIGNATURE_B64 \
    "K1joCV2F7+XW5XfREMrm12yi/vh62Hjhfbauoi/VW9OWP/veELAdPewKVrxzmX/Qf2iqvCYnHIjX+EeSTfe8Ow=="
#define SIGNED_SEALED_BODY SEALED_BODY "answer_signature=" ANSWER_SIGNATURE_B64 "\n"

static const tprov_answer_keys_t g_pinned = { { ANSWER_KEY, NULL }, 1, NULL, NULL };

/* The answer's signed message, written by the test itself (not the core's code). */
static size_t answer_message(char *out, size_t out_size, const unsigned char request_hash[32],
                             const char *username, const char *device, const char *host,
                             const char *field, const char *value, int created)
{
    char hex[65];
    size_t i;
    int n;

    for (i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", request_hash[i]);
    }
    n = snprintf(out, out_size, "thinger-provisioner answer v1\n%s\n%s\n%s\n%s\n%s\n%s\n%s", hex,
                 username, device, host, field, value, created ? "true" : "false");
    if (n < 0 || (size_t)n >= out_size) {
        fprintf(stderr, "answer message too long in a test\n");
        exit(2);
    }
    return (size_t)n;
}

/* The public point of d. */
static void p256_public(const unsigned char d[32], unsigned char point[TPROV_P256_POINT_LEN])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi scalar;
    size_t len = 0;
    int rc;

    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&scalar);
    rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    rc = rc != 0 ? rc : mbedtls_mpi_read_binary(&scalar, d, 32);
    rc = rc != 0 ? rc : mbedtls_ecp_mul(&grp, &q, &scalar, &grp.G, test_rng, NULL);
    rc = rc != 0 ? rc : mbedtls_ecp_point_write_binary(&grp, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &len,
                                                       point, TPROV_P256_POINT_LEN);
    mbedtls_mpi_free(&scalar);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    if (rc != 0 || len != TPROV_P256_POINT_LEN) {
        fprintf(stderr, "cannot compute a public key in a test\n");
        exit(2);
    }
}

/* Writes a text success answer with these fields, and, when d is not NULL, the service's
 * answer_signature made with d over request_hash, as the service makes it. */
static void signed_answer(char *out, size_t out_size, const char *username, const char *device,
                          const char *host, const char *field, const char *value, int created,
                          const unsigned char request_hash[32], const unsigned char *d)
{
    char message[1024];
    size_t message_len = answer_message(message, sizeof message, request_hash, username, device,
                                        host, field, value, created);
    unsigned char digest[32];
    unsigned char signature[64];
    char signature_b64[100] = "";
    size_t b64_len = 0;
    mbedtls_ecp_group grp;
    mbedtls_mpi scalar;
    mbedtls_mpi r;
    mbedtls_mpi s;
    int rc = 0;
    int n;

    if (d != NULL) {
        mbedtls_ecp_group_init(&grp);
        mbedtls_mpi_init(&scalar);
        mbedtls_mpi_init(&r);
        mbedtls_mpi_init(&s);
        rc = mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                        (const unsigned char *)message, message_len, digest);
        rc = rc != 0 ? rc : mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
        rc = rc != 0 ? rc : mbedtls_mpi_read_binary(&scalar, d, 32);
        rc = rc != 0 ? rc : mbedtls_ecdsa_sign(&grp, &r, &s, &scalar, digest, 32, test_rng, NULL);
        rc = rc != 0 ? rc : mbedtls_mpi_write_binary(&r, signature, 32);
        rc = rc != 0 ? rc : mbedtls_mpi_write_binary(&s, signature + 32, 32);
        rc = rc != 0 ? rc : mbedtls_base64_encode((unsigned char *)signature_b64,
                                                  sizeof signature_b64, &b64_len, signature, 64);
        mbedtls_mpi_free(&s);
        mbedtls_mpi_free(&r);
        mbedtls_mpi_free(&scalar);
        mbedtls_ecp_group_free(&grp);
    }
    n = snprintf(out, out_size, "username=%s\ndevice=%s\n%s=%s\nhost=%s\ncreated=%s\n%s%s%s",
                 username, device, field, value, host, created ? "true" : "false",
                 d != NULL ? "answer_signature=" : "", signature_b64, d != NULL ? "\n" : "");
    if (rc != 0 || n < 0 || (size_t)n >= out_size) {
        fprintf(stderr, "cannot sign an answer in a test\n");
        exit(2);
    }
}

/* tprov_parse_answer for the vector's device and timestamp, over the vector's request hash. */
static tprov_status_t parse_answer(const char *body, const tprov_key_t *key,
                                   const tprov_answer_keys_t *pinned, tprov_response_t *out)
{
    return tprov_parse_answer(body, strlen(body), DEVICE_ID, TIMESTAMP, key, pinned,
                              g_request_hash, out);
}

static void device_key(tprov_key_t *key, tprov_hmac_key_t *storage)
{
    if (tprov_key_from_device_key(key, storage, DEVICE_KEY_B64) != TPROV_OK) {
        fprintf(stderr, "the vector's device key was refused\n");
        exit(2);
    }
}

static void test_answer_signature_vector_verifies(void)
{
    unsigned char hash[TPROV_REQUEST_HASH_LEN];
    unsigned char built_hash[TPROV_REQUEST_HASH_LEN];
    unsigned char point[TPROV_P256_POINT_LEN];
    char message[1024];
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;
    tprov_request_options_t options = { NULL, 0, true, NULL };
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;

    CHECK(strlen(REQUEST_BODY_V2) == 125);
    CHECK_STATUS(tprov_hash_request(REQUEST_BODY_V2, strlen(REQUEST_BODY_V2), hash), TPROV_OK);
    CHECK(memcmp(hash, g_request_hash, sizeof hash) == 0);
    /* The builder hashes the body it wrote. */
    options.request_hash = built_hash;
    CHECK_STATUS(tprov_build_request_body_with(DEVICE_ID, TIMESTAMP, DEVICE_KEY_B64, &options, body,
                                               sizeof body, &len),
                 TPROV_OK);
    CHECK(strcmp(body, REQUEST_BODY_V2) == 0);
    CHECK(memcmp(built_hash, g_request_hash, sizeof built_hash) == 0);
    CHECK(answer_message(message, sizeof message, g_request_hash, "acme", DEVICE_ID,
                         "backend.thinger.io", "sealed", SEALED_B64, 1) == 222);
    CHECK_STATUS(tprov_answer_key_from_base64(ANSWER_KEY_B64, point), TPROV_OK);
    CHECK(memcmp(point, ANSWER_KEY, sizeof point) == 0);
    p256_public(ANSWER_D, point);
    CHECK(memcmp(point, ANSWER_KEY, sizeof point) == 0);

    device_key(&key, &storage);
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &g_pinned, &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS && strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    CHECK(strcmp(r.username, "acme") == 0 && strcmp(r.host, "backend.thinger.io") == 0 && r.created);
    /* Old parsers ignore the line. */
    CHECK_STATUS(tprov_parse_sealed_response(SIGNED_SEALED_BODY, strlen(SIGNED_SEALED_BODY),
                                             DEVICE_ID, SEAL_KEY, &r),
                 TPROV_OK);
    CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    tprov_memzero(&storage, sizeof storage);
}

static void test_every_changed_byte_of_a_signed_answer_is_refused(void)
{
    const char *body = SIGNED_SEALED_BODY;
    size_t len = strlen(body);
    char changed[TPROV_RESPONSE_MAX_LEN + 1];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;
    size_t line_start = 0;
    size_t i;

    device_key(&key, &storage);
    for (i = 0; i < len; i++) {
        const char *equals;
        tprov_status_t status;

        if (body[i] == '\n') {
            line_start = i + 1;
            continue;
        }
        equals = strchr(body + line_start, '=');
        if (body + i <= equals) {
            continue; /* the key: renaming it is a missing field, tested elsewhere */
        }
        memcpy(changed, body, len + 1);
        /* Another character of the same alphabet, so that the line still parses. */
        changed[i] = body[i] == 'A' ? 'B' : 'A';
        /* No expected device: the signature, not the device check, must refuse it. */
        status = tprov_parse_answer(changed, len, NULL, TIMESTAMP, &key, &g_pinned,
                                    g_request_hash, &r);
        if (strncmp(body + line_start, "created=", 8) == 0) {
            CHECK(status == TPROV_ERR_RESPONSE_VALUE); /* "trAe" */
        } else {
            CHECK(status == TPROV_ERR_ANSWER_SIGNATURE);
        }
        CHECK(is_all_zero(&r, sizeof r));
        if (g_case_failures > 0) {
            fprintf(stderr, "  changed byte %zu (%s)\n", i, tprov_status_name(status));
            break;
        }
    }
    /* created, turned into the other valid value. */
    {
        char flipped[TPROV_RESPONSE_MAX_LEN + 1];
        const char *created = strstr(body, "created=true\n");

        memcpy(flipped, body, (size_t)(created - body));
        snprintf(flipped + (created - body), sizeof flipped - (size_t)(created - body),
                 "created=false\n%s", created + strlen("created=true\n"));
        CHECK_STATUS(parse_answer(flipped, &key, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    }
    tprov_memzero(&storage, sizeof storage);
}

static void test_an_answer_to_another_request_is_refused(void)
{
    unsigned char other_hash[TPROV_REQUEST_HASH_LEN];
    char other_request[TPROV_REQUEST_BODY_MAX_LEN + 1];
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    size_t len = 0;
    tprov_request_options_t options = { NULL, 0, true, NULL };
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;

    device_key(&key, &storage);
    /* The vector's answer given to a later request of the same device. */
    options.request_hash = other_hash;
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP + 60u, &key, &options, NULL,
                                     other_request, sizeof other_request, &len),
                 TPROV_OK);
    CHECK_STATUS(tprov_parse_answer(SIGNED_SEALED_BODY, strlen(SIGNED_SEALED_BODY), DEVICE_ID,
                                    TIMESTAMP, &key, &g_pinned, other_hash, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    CHECK(is_all_zero(&r, sizeof r));
    /* And an answer signed for that other request, given to the vector's. */
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed", SEALED_B64,
                  1, other_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed", SEALED_B64,
                  1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_OK);
    tprov_memzero(&storage, sizeof storage);
}

static void test_an_answer_signed_by_another_key_is_refused(void)
{
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_p256_key_t p256_storage;
    tprov_key_t p256_key;
    tprov_response_t r;

    device_key(&key, &storage);
    vector_p256_key(&p256_key, &p256_storage);
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed", SEALED_B64,
                  1, g_request_hash, OTHER_ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "credential",
                  CREDENTIAL, 1, g_request_hash, OTHER_ANSWER_D);
    CHECK_STATUS(parse_answer(body, NULL, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    /* The device's own key is not the service's either. */
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed",
                  ECDH_SEALED_B64, 1, g_request_hash, X509_DEVICE_D);
    CHECK_STATUS(parse_answer(body, &p256_key, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    CHECK(is_all_zero(&r, sizeof r));
    tprov_memzero(&storage, sizeof storage);
    tprov_memzero(&p256_storage, sizeof p256_storage);
}

static void test_with_pinned_keys_every_success_answer_must_be_signed(void)
{
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_p256_key_t p256_storage;
    tprov_key_t p256_key;
    tprov_response_t r;

    device_key(&key, &storage);
    vector_p256_key(&p256_key, &p256_storage);
    /* Unsigned: v1, mode 1, mode 3. */
    CHECK_STATUS(parse_answer(SUCCESS_BODY, NULL, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(parse_answer(SEALED_BODY, &key, &g_pinned, &r), TPROV_ERR_ANSWER_SIGNATURE);
    CHECK_STATUS(parse_answer(ECDH_SEALED_BODY, &p256_key, &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    /* Empty, short, long or not base64. */
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=\n", &key, &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=K1joCV2F7+XW5XfREMrm12yi/vh62Hjhfbauoi/"
                                          "VW9OWP/veELAdPewKVrxzmX/Qf2iqvCYnHIjX+EeSTfe8O\n",
                              &key, &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY "x=1\n" /* still valid: an unknown key */, &key,
                              &g_pinned, &r),
                 TPROV_OK);
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=" ANSWER_SIGNATURE_B64 "AAAA\n", &key,
                              &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=K1joCV2F7+XW5XfREMrm12yi/vh62Hjhfbauoi/"
                                          "VW9OWP/veELAdPewKVrxzmX/Qf2iqvCYnHIjX+EeSTfe8O*=\n",
                              &key, &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    /* r = 0 and s = 0 (the all-zero signature) and r = s = n: outside [1, n-1]. */
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
                              &key, &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=/////wAAAAD//////////7zm+q2nF56E87nKwvxj"
                                          "JVH/////AAAAAP//////////vOb6racXnoTzucrC/GMlUQ==\n",
                              &key, &g_pinned, &r),
                 TPROV_ERR_ANSWER_SIGNATURE);
    /* A second signature line is refused like any known key twice. */
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY "answer_signature=" ANSWER_SIGNATURE_B64 "\n", &key,
                              &g_pinned, &r),
                 TPROV_ERR_RESPONSE_DUPLICATE);
    /* A v1 answer signed by the service is accepted. */
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "credential",
                  CREDENTIAL, 0, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, NULL, &g_pinned, &r), TPROV_OK);
    CHECK(strcmp(r.credential, CREDENTIAL) == 0 && !r.created);
    /* Signed as "sealed" but carrying "credential": the field's name is signed too. */
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "credential",
                  SEALED_B64, 1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_ERR_RESPONSE_NOT_SEALED);
    /* Error answers are not signed, and parse as before. */
    CHECK_STATUS(parse_answer("error=clock_skew\nserver_time=1764150301\n", &key, &g_pinned, &r),
                 TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_ERROR && r.has_server_time);
    tprov_memzero(&storage, sizeof storage);
    tprov_memzero(&p256_storage, sizeof p256_storage);
}

#define CLAIM_SEALED_B64 "AQIAAQIDBAUGBwgJCguh/f7sv85TRWnDUn3B+dYycgg5e2UNcdOFJCfLo/y0Ocwqbe+c/K4W"

static void test_claim_and_ecdh_envelopes_need_a_pinned_key(void)
{
    static const char claim_body[] = "username=acme\ndevice=ws_kit0001\nsealed=" CLAIM_SEALED_B64
                                     "\nhost=backend.thinger.io\ncreated=true\n";
    static const tprov_answer_keys_t none = { { NULL, NULL }, 0, NULL, NULL };
    char credential[TPROV_CREDENTIAL_MAX_LEN + 1];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_p256_key_t p256_storage;
    tprov_key_t p256_key;
    tprov_response_t r;

    device_key(&key, &storage);
    vector_p256_key(&p256_key, &p256_storage);
    CHECK_STATUS(parse_answer(ECDH_SEALED_BODY, &p256_key, NULL, &r), TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(parse_answer(ECDH_SEALED_BODY, &p256_key, &none, &r),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK_STATUS(tprov_parse_answer(claim_body, strlen(claim_body), "ws_kit0001", TIMESTAMP, &key,
                                    NULL, NULL, &r),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK_STATUS(tprov_parse_sealed_response(claim_body, strlen(claim_body), "ws_kit0001",
                                             SEAL_KEY, &r),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK_STATUS(tprov_open_sealed(CLAIM_SEALED_B64, strlen(CLAIM_SEALED_B64), SEAL_KEY, "acme",
                                   "ws_kit0001", "backend.thinger.io", credential,
                                   sizeof credential),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK(is_all_zero(credential, sizeof credential));
    tprov_memzero(&storage, sizeof storage);
    tprov_memzero(&p256_storage, sizeof p256_storage);
}

static void test_v1_and_mode_1_answers_need_no_pinned_key(void)
{
    static const tprov_answer_keys_t none = { { NULL, NULL }, 0, NULL, NULL };
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;

    device_key(&key, &storage);
    CHECK_STATUS(parse_answer(SUCCESS_BODY, NULL, NULL, &r), TPROV_OK);
    CHECK(strcmp(r.credential, CREDENTIAL) == 0);
    CHECK_STATUS(parse_answer(SEALED_BODY, &key, NULL, &r), TPROV_OK);
    CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    CHECK_STATUS(parse_answer(SEALED_BODY, &key, &none, &r), TPROV_OK);
    /* A signature is ignored when nothing is pinned, even a broken one. */
    CHECK_STATUS(parse_answer(SEALED_BODY "answer_signature=not-base64\n", &key, NULL, &r),
                 TPROV_OK);
    CHECK_STATUS(tprov_parse_answer(SUCCESS_BODY, strlen(SUCCESS_BODY), DEVICE_ID, 0, NULL, NULL,
                                    NULL, &r),
                 TPROV_OK);
    /* And the entry points from before answer signatures, as before. */
    CHECK_STATUS(tprov_parse_response_with_key(SEALED_BODY, strlen(SEALED_BODY), DEVICE_ID,
                                               TIMESTAMP, &key, &r),
                 TPROV_OK);
    CHECK_STATUS(tprov_parse_response(SUCCESS_BODY, strlen(SUCCESS_BODY), DEVICE_ID, &r), TPROV_OK);
    tprov_memzero(&storage, sizeof storage);
}

/* Whatever a party in the middle changes in a signed answer, nothing but the signed fields is ever
 * accepted: a success always carries the service's username, host, credential and created. */
static void test_mutated_signed_answers_yield_the_signed_fields_or_nothing(void)
{
    static const char seed[] = SIGNED_SEALED_BODY;
    char body[TPROV_RESPONSE_MAX_LEN + 16];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;
    int successes = 0;
    int i;

    device_key(&key, &storage);
    for (i = 0; i < 1500; i++) {
        size_t len = strlen(seed);
        int edits;
        tprov_status_t status;

        memcpy(body, seed, len);
        for (edits = 1 + (int)(next_random() % 3u); edits > 0; edits--) {
            size_t at = next_random() % len;
            uint32_t what = next_random() % 4u;

            if (what == 0) {
                body[at] = (char)(next_random() & 0xFFu);
            } else if (what == 1) {
                body[at] = "AB+/=\n"[next_random() % 6u];
            } else if (what == 2 && len > 1) {
                len = at + 1;
            } else if (len + 8 < sizeof body) {
                memmove(body + at + 8, body + at, len - at);
                memcpy(body + at, "x=1\nAAAA", 8);
                len += 8;
            }
        }
        status = tprov_parse_answer(body, len, DEVICE_ID, TIMESTAMP, &key, &g_pinned,
                                    g_request_hash, &r);
        if (status == TPROV_OK && r.kind == TPROV_RESPONSE_SUCCESS) {
            successes++;
            CHECK(strcmp(r.username, "acme") == 0 && strcmp(r.host, "backend.thinger.io") == 0);
            CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0 && r.created);
        } else if (status != TPROV_OK) {
            CHECK(is_all_zero(&r, sizeof r));
        }
        if (g_case_failures > 0) {
            fprintf(stderr, "  iteration %d\n", i);
            break;
        }
    }
    /* Some mutations leave the signed fields intact (an unknown line, a cut after the signature). */
    CHECK(successes > 0);
    tprov_memzero(&storage, sizeof storage);
}

static int g_verify_calls;

static int counting_verify(void *ctx, const unsigned char public_key[TPROV_P256_POINT_LEN],
                           const unsigned char digest[32], const unsigned char signature[64])
{
    (void)digest;
    (void)signature;
    g_verify_calls++;
    /* A secure element that knows the key of the test vector only. */
    return ctx == NULL && memcmp(public_key, ANSWER_KEY, TPROV_P256_POINT_LEN) == 0 ? 0 : 1;
}

static void test_the_second_pinned_key_verifies_during_a_rotation(void)
{
    unsigned char next_key[TPROV_P256_POINT_LEN];
    tprov_answer_keys_t both = { { NULL, NULL }, 2, NULL, NULL };
    tprov_answer_keys_t next_only = { { NULL, NULL }, 1, NULL, NULL };
    tprov_answer_keys_t callback = { { NULL, NULL }, 2, counting_verify, NULL };
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;

    device_key(&key, &storage);
    p256_public(OTHER_ANSWER_D, next_key);
    /* Firmware pins the new key first and the old one second: the old one still answers. */
    both.keys[0] = next_key;
    both.keys[1] = ANSWER_KEY;
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &both, &r), TPROV_OK);
    CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    /* Then the service switches to the new key. */
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed", SEALED_B64,
                  1, g_request_hash, OTHER_ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &both, &r), TPROV_OK);
    /* Firmware that dropped the old key refuses the old key's answers. */
    next_only.keys[0] = next_key;
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &next_only, &r), TPROV_ERR_ANSWER_SIGNATURE);
    CHECK_STATUS(parse_answer(body, &key, &next_only, &r), TPROV_OK);
    /* A verify callback does the check instead of mbedTLS, key by key. */
    callback.keys[0] = next_key;
    callback.keys[1] = ANSWER_KEY;
    g_verify_calls = 0;
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &callback, &r), TPROV_OK);
    CHECK(g_verify_calls == 2);
    callback.count = 1;
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &callback, &r), TPROV_ERR_ANSWER_SIGNATURE);
    tprov_memzero(&storage, sizeof storage);
}

static void test_answer_keys_and_arguments_are_validated(void)
{
    unsigned char point[TPROV_P256_POINT_LEN];
    unsigned char off_curve[TPROV_P256_POINT_LEN];
    char b64[TPROV_ANSWER_KEY_B64_LEN + 8];
    size_t b64_len = 0;
    tprov_answer_keys_t three = { { ANSWER_KEY, ANSWER_KEY }, 3, NULL, NULL };
    tprov_answer_keys_t hole = { { NULL, ANSWER_KEY }, 2, NULL, NULL };
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_response_t r;

    CHECK_STATUS(tprov_answer_key_from_base64(ANSWER_KEY_B64, point), TPROV_OK);
    CHECK_STATUS(tprov_answer_key_from_base64(ANSWER_KEY_B64 "\n", point), TPROV_ERR_KEY);
    CHECK(is_all_zero(point, sizeof point));
    CHECK_STATUS(tprov_answer_key_from_base64(ANSWER_KEY_B64 + 1, point), TPROV_ERR_KEY);
    CHECK_STATUS(tprov_answer_key_from_base64("", point), TPROV_ERR_KEY);
    CHECK_STATUS(tprov_answer_key_from_base64(NULL, point), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_answer_key_from_base64(ANSWER_KEY_B64, NULL), TPROV_ERR_ARGUMENT);
    /* Off the curve, and a compressed prefix on a valid point. */
    memcpy(off_curve, ANSWER_KEY, sizeof off_curve);
    off_curve[64] ^= 0x01u;
    mbedtls_base64_encode((unsigned char *)b64, sizeof b64, &b64_len, off_curve, sizeof off_curve);
    CHECK_STATUS(tprov_answer_key_from_base64(b64, point), TPROV_ERR_KEY);
    memcpy(off_curve, ANSWER_KEY, sizeof off_curve);
    off_curve[0] = 0x02u;
    mbedtls_base64_encode((unsigned char *)b64, sizeof b64, &b64_len, off_curve, sizeof off_curve);
    CHECK_STATUS(tprov_answer_key_from_base64(b64, point), TPROV_ERR_KEY);

    device_key(&key, &storage);
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &three, &r), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(parse_answer(SIGNED_SEALED_BODY, &key, &hole, &r), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_parse_answer(SIGNED_SEALED_BODY, strlen(SIGNED_SEALED_BODY), DEVICE_ID,
                                    TIMESTAMP, &key, &g_pinned, NULL, &r),
                 TPROV_ERR_ARGUMENT);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(tprov_hash_request(NULL, 1, point), TPROV_ERR_ARGUMENT);
    tprov_memzero(&storage, sizeof storage);
}

static void test_device_key_behind_a_callback_signs_the_vector(void)
{
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_request_options_t sealed;
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;
    tprov_response_t r;

    CHECK_STATUS(tprov_key_from_device_key(&key, &storage, DEVICE_KEY_B64), TPROV_OK);
    CHECK(key.type == TPROV_KEY_HMAC && key.hmac != NULL && key.sign == NULL);
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, NULL, NULL, body, sizeof body,
                                     &len),
                 TPROV_OK);
    CHECK(strcmp(body, REQUEST_BODY) == 0 && len == strlen(REQUEST_BODY));
    memset(&sealed, 0, sizeof sealed);
    sealed.sealed = true;
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &sealed, NULL, body, sizeof body,
                                     &len),
                 TPROV_OK);
    CHECK(strstr(body, "\"signature\":\"" SIGNATURE_V2_B64 "\"") != NULL);
    /* The answer opens with the key itself, for the timestamp it signed. */
    CHECK_STATUS(tprov_parse_response_with_key(SEALED_BODY, strlen(SEALED_BODY), DEVICE_ID,
                                               TIMESTAMP, &key, &r),
                 TPROV_OK);
    CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    CHECK_STATUS(tprov_parse_response_with_key(SEALED_BODY, strlen(SEALED_BODY), DEVICE_ID,
                                               TIMESTAMP + 1u, &key, &r),
                 TPROV_ERR_SEALED);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(tprov_key_from_device_key(&key, &storage, "not a key"), TPROV_ERR_KEY);
    CHECK(is_all_zero(&storage, sizeof storage));
}

/* Stands in for the ESP32 HMAC peripheral: the key is in "hardware" (this static), the core only
 * ever sees the callback. */
static unsigned char g_efuse_block[32];
static int g_hmac_calls;

static int efuse_hmac(void *ctx, const unsigned char *message, size_t message_len,
                      unsigned char mac[32])
{
    (void)ctx;
    g_hmac_calls++;
    return mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), g_efuse_block,
                           sizeof g_efuse_block, message, message_len, mac);
}

static int failing_hmac(void *ctx, const unsigned char *message, size_t message_len,
                        unsigned char mac[32])
{
    (void)ctx;
    (void)message;
    (void)message_len;
    memset(mac, 0xAA, 32);
    return -1;
}

static void test_hardware_hmac_key_gives_the_same_request_and_opens_the_answer(void)
{
    tprov_key_t key;
    tprov_request_options_t options;
    char body[TPROV_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;
    tprov_response_t r;

    decode_b64(DEVICE_KEY_B64, g_efuse_block, sizeof g_efuse_block);
    memset(&key, 0, sizeof key);
    key.type = TPROV_KEY_HMAC;
    key.hmac = efuse_hmac;
    memset(&options, 0, sizeof options);
    options.sealed = true;
    g_hmac_calls = 0;
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &options, NULL, body, sizeof body,
                                     &len),
                 TPROV_OK);
    CHECK(strstr(body, SIGNATURE_V2_B64) != NULL);
    CHECK_STATUS(tprov_parse_response_with_key(SEALED_BODY, strlen(SEALED_BODY), DEVICE_ID,
                                               TIMESTAMP, &key, &r),
                 TPROV_OK);
    CHECK(strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    CHECK(g_hmac_calls == 2);

    /* A peripheral that fails: the request is not built, the buffer is wiped. */
    key.hmac = failing_hmac;
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &options, NULL, body, sizeof body,
                                     &len),
                 TPROV_ERR_KEY_CALLBACK);
    CHECK(is_all_zero(body, sizeof body) && len == 0);
    CHECK_STATUS(tprov_parse_response_with_key(SEALED_BODY, strlen(SEALED_BODY), DEVICE_ID,
                                               TIMESTAMP, &key, &r),
                 TPROV_ERR_KEY_CALLBACK);
    CHECK(is_all_zero(&r, sizeof r));
    memset(g_efuse_block, 0, sizeof g_efuse_block);
}

static void test_x509_vector_answer_opens_with_ecdh(void)
{
    tprov_p256_key_t storage;
    tprov_key_t key;
    tprov_hmac_key_t hmac_storage;
    tprov_key_t hmac_key;
    tprov_response_t r;
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    char credential[TPROV_CREDENTIAL_MAX_LEN + 1];

    vector_p256_key(&key, &storage);
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed",
                  ECDH_SEALED_B64, 1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_OK);
    CHECK(r.kind == TPROV_RESPONSE_SUCCESS && strcmp(r.credential, SEALED_CREDENTIAL) == 0);
    CHECK(r.created && strcmp(r.host, "backend.thinger.io") == 0);

    /* Signed, yet another timestamp or host: the seal key or the associated data differ. */
    CHECK_STATUS(tprov_parse_answer(body, strlen(body), DEVICE_ID, TIMESTAMP + 1u, &key, &g_pinned,
                                    g_request_hash, &r),
                 TPROV_ERR_SEALED);
    CHECK(is_all_zero(&r, sizeof r));
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "evil.example.com", "sealed",
                  ECDH_SEALED_B64, 1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_ERR_SEALED);
    /* Each key opens its own mode only, and a seal key in hand never opens ECDH envelopes. */
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed", SEALED_B64,
                  1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_ERR_SEALED);
    CHECK_STATUS(tprov_key_from_device_key(&hmac_key, &hmac_storage, DEVICE_KEY_B64), TPROV_OK);
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed",
                  ECDH_SEALED_B64, 1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &hmac_key, &g_pinned, &r), TPROV_ERR_SEALED);
    /* A credential in clear is a downgrade for a P-256 key too. */
    CHECK_STATUS(tprov_parse_response_with_key(SUCCESS_BODY, strlen(SUCCESS_BODY), DEVICE_ID,
                                               TIMESTAMP, &key, &r),
                 TPROV_ERR_RESPONSE_NOT_SEALED);
    /* Without a pinned answer key no entry point opens an ECDH envelope: it is made from the
     * certificate's public key alone (issue 17, finding 3). */
    CHECK_STATUS(tprov_parse_response_with_key(ECDH_SEALED_BODY, strlen(ECDH_SEALED_BODY),
                                               DEVICE_ID, TIMESTAMP, &key, &r),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(tprov_open_sealed_with_key(ECDH_SEALED_B64, strlen(ECDH_SEALED_B64), &key,
                                            DEVICE_ID, TIMESTAMP, "acme", "backend.thinger.io",
                                            credential, sizeof credential),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK(is_all_zero(credential, sizeof credential));
    CHECK_STATUS(tprov_open_sealed(ECDH_SEALED_B64, strlen(ECDH_SEALED_B64), SEAL_KEY, "acme",
                                   DEVICE_ID, "backend.thinger.io", credential, sizeof credential),
                 TPROV_ERR_ANSWER_KEY_REQUIRED);
    CHECK_STATUS(parse_answer(ECDH_SEALED_BODY, &key, NULL, &r), TPROV_ERR_ANSWER_KEY_REQUIRED);
    tprov_memzero(&storage, sizeof storage);
    tprov_memzero(&hmac_storage, sizeof hmac_storage);
}

static void test_every_changed_byte_of_an_ecdh_envelope_is_refused(void)
{
    unsigned char envelope[400];
    unsigned char changed[400];
    char b64[600];
    char body[TPROV_RESPONSE_MAX_LEN + 1];
    size_t envelope_len = decode_b64(ECDH_SEALED_B64, envelope, sizeof envelope);
    size_t b64_len = 0;
    tprov_p256_key_t storage;
    tprov_key_t key;
    tprov_response_t r;
    size_t i;

    vector_p256_key(&key, &storage);
    CHECK(envelope_len == 2u + 65u + 12u + 24u + 16u);
    for (i = 0; i < envelope_len; i++) {
        tprov_status_t status;

        memcpy(changed, envelope, envelope_len);
        changed[i] ^= 0x01u;
        mbedtls_base64_encode((unsigned char *)b64, sizeof b64, &b64_len, changed, envelope_len);
        /* Signed by the service's key: what is tested here is the envelope's own binding. */
        signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed", b64, 1,
                      g_request_hash, ANSWER_D);
        status = parse_answer(body, &key, &g_pinned, &r);
        /* A changed point is off the curve (the callback refuses it) or another key (GCM does). */
        CHECK(status == TPROV_ERR_SEALED || status == TPROV_ERR_KEY_CALLBACK);
        CHECK(is_all_zero(&r, sizeof r));
        if (g_case_failures > 0) {
            fprintf(stderr, "  changed byte %zu\n", i);
            return;
        }
    }
    tprov_memzero(&storage, sizeof storage);
}

static void test_x509_request_is_signed_by_the_p256_key_and_carries_the_certificate(void)
{
    unsigned char certificate_der[600];
    unsigned char signature[80];
    char signature_b64[120];
    char certificate_b64[900];
    char body[TPROV_X509_REQUEST_BODY_MAX_LEN + 1];
    char again[TPROV_X509_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;
    size_t full;
    tprov_certificate_t certificate;
    tprov_request_options_t options;
    tprov_p256_key_t storage;
    tprov_key_t key;

    vector_p256_key(&key, &storage);
    memset(&certificate, 0, sizeof certificate);
    certificate.der = certificate_der;
    certificate.der_len = decode_b64(X509_CERTIFICATE_B64, certificate_der, sizeof certificate_der);
    memset(&options, 0, sizeof options);
    options.fleet = "factory";
    options.sealed = true;

    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &options, &certificate, body,
                                     sizeof body, &len),
                 TPROV_OK);
    CHECK(len == strlen(body));
    CHECK(strncmp(body, "{\"device\":\"esp32_a1b2c3d4e5f6\",\"timestamp\":1764150000,"
                        "\"signature\":\"", 67) == 0);
    CHECK(strstr(body, ",\"fleet\":\"factory\",\"version\":2,\"certificate\":\"") != NULL);
    CHECK(json_string(body, "certificate", certificate_b64, sizeof certificate_b64) == 0 &&
          strcmp(certificate_b64, X509_CERTIFICATE_B64) == 0);
    CHECK(strstr(body, "chain") == NULL && strstr(body, "keyVersion") == NULL);
    CHECK(json_string(body, "signature", signature_b64, sizeof signature_b64) == 0);
    CHECK(strlen(signature_b64) == 88u);
    CHECK(p256_verifies(X509_DEVICE_D, "v2\nesp32_a1b2c3d4e5f6\n1764150000", signature,
                        decode_b64(signature_b64, signature, sizeof signature)));
    /* RFC 6979: the same request twice is the same bytes (no RNG in the signature). */
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &options, &certificate, again,
                                     sizeof again, &len),
                 TPROV_OK);
    CHECK(strcmp(body, again) == 0);

    /* v1: signs "v1\n…" and asks for no sealing; an intermediate goes in "chain". */
    options.sealed = false;
    certificate.chain_der = certificate_der; /* any DER: the core does not read it */
    certificate.chain_der_len = certificate.der_len;
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &options, &certificate, body,
                                     sizeof body, &len),
                 TPROV_OK);
    CHECK(strstr(body, "\"version\"") == NULL);
    CHECK(strstr(body, ",\"chain\":[\"" X509_CERTIFICATE_B64 "\"]}") != NULL);
    CHECK(json_string(body, "signature", signature_b64, sizeof signature_b64) == 0);
    CHECK(p256_verifies(X509_DEVICE_D, "v1\nesp32_a1b2c3d4e5f6\n1764150000", signature,
                        decode_b64(signature_b64, signature, sizeof signature)));
    /* No room for the NUL: refused, and what was written is wiped. */
    full = len;
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, &key, &options, &certificate, body,
                                     full, &len),
                 TPROV_ERR_BUFFER_TOO_SMALL);
    CHECK(is_all_zero(body, full) && len == 0);
    tprov_memzero(&storage, sizeof storage);
}

/* An RSA key in the Digital Signature peripheral, faked: a 256-byte "signature" of the digest. */
static size_t g_rsa_signature_len;

static int fake_rsa_sign(void *ctx, const unsigned char digest[32], unsigned char *signature,
                         size_t signature_size, size_t *signature_len)
{
    size_t i;

    (void)ctx;
    if (g_rsa_signature_len > signature_size) {
        return -1;
    }
    for (i = 0; i < g_rsa_signature_len; i++) {
        signature[i] = digest[i % 32u];
    }
    *signature_len = g_rsa_signature_len;
    return 0;
}

static int fake_p256_sign(void *ctx, const unsigned char digest[32], unsigned char *signature,
                          size_t signature_size, size_t *signature_len)
{
    return fake_rsa_sign(ctx, digest, signature, signature_size, signature_len);
}

/* Builds a request whose sign callback writes signature_len bytes; the body is wiped on failure. */
static tprov_status_t build_with_signature_len(tprov_key_type_t type, size_t signature_len,
                                               char *body, size_t body_size, size_t *len)
{
    static const unsigned char der[3] = { 0x30, 0x01, 0x00 };
    tprov_certificate_t certificate = { der, sizeof der, NULL, 0 };
    tprov_key_t key;

    memset(&key, 0, sizeof key);
    key.type = type;
    key.sign = type == TPROV_KEY_RSA ? fake_rsa_sign : fake_p256_sign;
    g_rsa_signature_len = signature_len;
    return tprov_build_request(DEVICE_ID, TIMESTAMP, &key, NULL, &certificate, body, body_size, len);
}

static void test_sign_callbacks_must_write_a_length_their_key_type_makes(void)
{
    char body[TPROV_X509_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;

    CHECK_STATUS(build_with_signature_len(TPROV_KEY_RSA, 256, body, sizeof body, &len), TPROV_OK);
    CHECK(strstr(body, "\"certificate\":\"MAEA\"") != NULL);
    CHECK_STATUS(build_with_signature_len(TPROV_KEY_RSA, 512, body, sizeof body, &len), TPROV_OK);
    CHECK(len < TPROV_X509_REQUEST_BODY_MAX_LEN);
    /* under RSA 2048 */
    CHECK_STATUS(build_with_signature_len(TPROV_KEY_RSA, 255, body, sizeof body, &len),
                 TPROV_ERR_KEY_CALLBACK);
    CHECK(is_all_zero(body, sizeof body));
    /* more than the buffer: the callback refuses */
    CHECK_STATUS(build_with_signature_len(TPROV_KEY_RSA, 513, body, sizeof body, &len),
                 TPROV_ERR_KEY_CALLBACK);
    CHECK_STATUS(build_with_signature_len(TPROV_KEY_P256, 63, body, sizeof body, &len),
                 TPROV_ERR_KEY_CALLBACK);
    CHECK_STATUS(build_with_signature_len(TPROV_KEY_P256, 65, body, sizeof body, &len),
                 TPROV_ERR_KEY_CALLBACK);
    CHECK_STATUS(build_with_signature_len(TPROV_KEY_P256, 64, body, sizeof body, &len), TPROV_OK);
}

static void test_x509_requests_refuse_combinations_the_protocol_refuses(void)
{
    unsigned char der[3] = { 0x30, 0x01, 0x00 };
    char body[TPROV_X509_REQUEST_BODY_MAX_LEN + 1];
    size_t len = 0;
    tprov_certificate_t certificate = { der, sizeof der, NULL, 0 };
    tprov_certificate_t empty = { der, 0, NULL, 0 };
    tprov_certificate_t empty_chain = { der, sizeof der, der, 0 };
    tprov_request_options_t options;
    tprov_hmac_key_t hmac_storage;
    tprov_key_t hmac_key;
    tprov_p256_key_t storage;
    tprov_key_t key;
    tprov_key_t sign_only;
    tprov_key_t rsa;

    vector_p256_key(&key, &storage);
    sign_only = key;
    sign_only.ecdh = NULL;
    memset(&rsa, 0, sizeof rsa);
    rsa.type = TPROV_KEY_RSA;
    rsa.sign = fake_rsa_sign;
    g_rsa_signature_len = 256;
    CHECK_STATUS(tprov_key_from_device_key(&hmac_key, &hmac_storage, DEVICE_KEY_B64), TPROV_OK);
    memset(&options, 0, sizeof options);

#define REFUSED(k, o, c, expected)                                                            \
    CHECK_STATUS(tprov_build_request(DEVICE_ID, TIMESTAMP, k, o, c, body, sizeof body, &len), \
                 expected)
    REFUSED(&hmac_key, NULL, &certificate, TPROV_ERR_REQUEST_OPTION); /* a device key has none */
    REFUSED(&key, NULL, NULL, TPROV_ERR_REQUEST_OPTION);              /* an X.509 key needs one */
    REFUSED(&key, NULL, &empty, TPROV_ERR_REQUEST_OPTION);
    REFUSED(&key, NULL, &empty_chain, TPROV_ERR_REQUEST_OPTION);
    options.key_version = 2; /* key versions are for fleet keys */
    REFUSED(&key, &options, &certificate, TPROV_ERR_REQUEST_OPTION);
    options.key_version = 0;
    options.sealed = true; /* sealing needs ECDH */
    REFUSED(&rsa, &options, &certificate, TPROV_ERR_REQUEST_OPTION);
    REFUSED(&sign_only, &options, &certificate, TPROV_ERR_REQUEST_OPTION);
    options.sealed = false;
    options.fleet = "Factory";
    REFUSED(&key, &options, &certificate, TPROV_ERR_REQUEST_OPTION);
    REFUSED(NULL, NULL, &certificate, TPROV_ERR_ARGUMENT);
    sign_only.sign = NULL;
    REFUSED(&sign_only, NULL, &certificate, TPROV_ERR_ARGUMENT);
    sign_only.type = (tprov_key_type_t)7;
    REFUSED(&sign_only, NULL, &certificate, TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_build_request("bad id!", TIMESTAMP, &key, NULL, &certificate, body,
                                     sizeof body, &len),
                 TPROV_ERR_DEVICE_ID);
    REFUSED(&rsa, NULL, &certificate, TPROV_OK);
    REFUSED(&sign_only, NULL, &certificate, TPROV_ERR_ARGUMENT);
#undef REFUSED
    tprov_memzero(&storage, sizeof storage);
}

static void test_p256_private_keys_outside_1_to_n_minus_1_are_refused(void)
{
    /* n, the order of P-256 */
    static const unsigned char order[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51
    };
    unsigned char d[32];
    tprov_p256_key_t storage;
    tprov_key_t key;

    memset(d, 0, sizeof d);
    CHECK_STATUS(tprov_key_from_p256(&key, &storage, d, test_rng, NULL), TPROV_ERR_KEY);
    CHECK(is_all_zero(&storage, sizeof storage));
    CHECK_STATUS(tprov_key_from_p256(&key, &storage, order, test_rng, NULL), TPROV_ERR_KEY);
    memset(d, 0xff, sizeof d);
    CHECK_STATUS(tprov_key_from_p256(&key, &storage, d, test_rng, NULL), TPROV_ERR_KEY);
    memcpy(d, order, sizeof d);
    d[31] = 0x50; /* n - 1 */
    CHECK_STATUS(tprov_key_from_p256(&key, &storage, d, test_rng, NULL), TPROV_OK);
    CHECK(key.type == TPROV_KEY_P256 && key.sign != NULL && key.ecdh != NULL);
    CHECK_STATUS(tprov_key_from_p256(&key, &storage, X509_DEVICE_D, NULL, NULL), TPROV_ERR_ARGUMENT);
    CHECK_STATUS(tprov_key_from_p256(NULL, &storage, X509_DEVICE_D, test_rng, NULL),
                 TPROV_ERR_ARGUMENT);
    tprov_memzero(&storage, sizeof storage);
}

static int failing_ecdh(void *ctx, const unsigned char peer[TPROV_P256_POINT_LEN],
                        unsigned char shared_x[32])
{
    (void)ctx;
    (void)peer;
    memset(shared_x, 0x55, 32);
    return 0x7F;
}

static void test_a_failing_key_agreement_stores_nothing(void)
{
    tprov_p256_key_t storage;
    tprov_key_t key;
    tprov_response_t r;
    char body[TPROV_RESPONSE_MAX_LEN + 1];

    vector_p256_key(&key, &storage);
    key.ecdh = failing_ecdh;
    signed_answer(body, sizeof body, "acme", DEVICE_ID, "backend.thinger.io", "sealed",
                  ECDH_SEALED_B64, 1, g_request_hash, ANSWER_D);
    CHECK_STATUS(parse_answer(body, &key, &g_pinned, &r), TPROV_ERR_KEY_CALLBACK);
    CHECK(is_all_zero(&r, sizeof r));
    CHECK_STATUS(tprov_parse_response_with_key(ECDH_SEALED_BODY, strlen(ECDH_SEALED_BODY),
                                               DEVICE_ID, TIMESTAMP, NULL, &r),
                 TPROV_ERR_ARGUMENT);
    tprov_memzero(&storage, sizeof storage);
}

int main(void)
{
    RUN(test_vector_device_key);
    RUN(test_vector_signature);
    RUN(test_vector_request_body);
    RUN(test_longest_request_body_fits_the_documented_bound);
    RUN(test_fleet_and_key_version_are_sent_unsigned);
    RUN(test_timestamp_zero_is_signed_as_0);
    RUN(test_request_body_refuses_a_small_buffer_and_wipes_it);
    RUN(test_small_key_and_signature_buffers_are_refused);
    RUN(test_device_ids_are_validated);
    RUN(test_malformed_device_keys_are_refused);
    RUN(test_fleet_keys_outside_32_to_256_bytes_are_refused);
    RUN(test_success_response_is_parsed);
    RUN(test_host_may_carry_a_port);
    RUN(test_created_false_means_the_device_existed);
    RUN(test_field_order_is_free);
    RUN(test_values_split_at_the_first_equals_sign);
    RUN(test_usernames_and_hosts_follow_the_services_rules);
    RUN(test_unknown_keys_are_ignored);
    RUN(test_error_response_is_parsed);
    RUN(test_error_with_retry_after);
    RUN(test_error_with_server_time);
    RUN(test_hostile_server_time_cannot_overflow_the_clock);
    RUN(test_vector_sealed_request_and_seal_key);
    RUN(test_vector_sealed_credential_opens);
    RUN(test_sealed_response_is_parsed_and_opened);
    RUN(test_sealed_response_refuses_swapped_fields_and_other_keys);
    RUN(test_every_changed_character_of_a_sealed_credential_is_refused);
    RUN(test_sealed_request_refuses_a_credential_in_clear);
    RUN(test_error_response_carries_no_credentials);
    RUN(test_crlf_line_endings_are_accepted);
    RUN(test_maximum_lengths_are_accepted);
    RUN(test_body_of_exactly_the_maximum_size_is_accepted);
    RUN(test_empty_body_is_refused);
    RUN(test_truncated_body_is_refused);
    RUN(test_oversized_body_is_refused);
    RUN(test_oversized_values_are_refused);
    RUN(test_each_missing_success_field_is_refused);
    RUN(test_bad_created_values_are_refused);
    RUN(test_duplicate_known_keys_are_refused);
    RUN(test_bad_numbers_are_refused);
    RUN(test_bad_field_values_are_refused);
    RUN(test_lines_that_are_not_key_value_are_refused);
    RUN(test_control_bytes_and_stray_cr_are_refused);
    RUN(test_credentials_for_another_device_are_refused);
    RUN(test_null_arguments_are_refused);
    RUN(test_next_step_follows_the_retry_rules);
    RUN(test_backoff_has_full_jitter_within_an_exponential_cap);
    RUN(test_retry_after_comes_first_and_is_clamped);
    RUN(test_status_names_are_distinct);
    RUN(test_memzero_clears_every_byte);
    RUN(test_parser_survives_mutated_and_random_input);
    RUN(test_device_key_behind_a_callback_signs_the_vector);
    RUN(test_hardware_hmac_key_gives_the_same_request_and_opens_the_answer);
    RUN(test_x509_vector_answer_opens_with_ecdh);
    RUN(test_every_changed_byte_of_an_ecdh_envelope_is_refused);
    RUN(test_x509_request_is_signed_by_the_p256_key_and_carries_the_certificate);
    RUN(test_sign_callbacks_must_write_a_length_their_key_type_makes);
    RUN(test_x509_requests_refuse_combinations_the_protocol_refuses);
    RUN(test_p256_private_keys_outside_1_to_n_minus_1_are_refused);
    RUN(test_a_failing_key_agreement_stores_nothing);
    RUN(test_answer_signature_vector_verifies);
    RUN(test_every_changed_byte_of_a_signed_answer_is_refused);
    RUN(test_an_answer_to_another_request_is_refused);
    RUN(test_an_answer_signed_by_another_key_is_refused);
    RUN(test_with_pinned_keys_every_success_answer_must_be_signed);
    RUN(test_claim_and_ecdh_envelopes_need_a_pinned_key);
    RUN(test_v1_and_mode_1_answers_need_no_pinned_key);
    RUN(test_the_second_pinned_key_verifies_during_a_rotation);
    RUN(test_mutated_signed_answers_yield_the_signed_fields_or_nothing);
    RUN(test_answer_keys_and_arguments_are_validated);

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
