/* Shared by the fuzz targets: see common.h. */
#include "common.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mbedtls/md.h"

/* The X.509 test vector's private scalar (docs/protocol.md, test/support/x509-vector.ts). */
static const unsigned char X509_DEVICE_D[TPROV_P256_SCALAR_LEN] = {
    0x72, 0x84, 0xac, 0x89, 0x62, 0x18, 0xef, 0x99, 0x16, 0x91, 0x5d, 0x16, 0x51, 0x8b, 0xeb, 0x2f,
    0xde, 0x42, 0x28, 0x25, 0x84, 0xcc, 0x3f, 0x2a, 0x1e, 0x5f, 0xa9, 0xdc, 0x28, 0x28, 0xfa, 0x83
};
#define CLAIM_LABEL "thinger-provisioner seal v1\nclaim\n"

static unsigned char g_seal_key[TPROV_SEAL_KEY_LEN];
static unsigned char g_claim_seal_key[TPROV_SEAL_KEY_LEN];
static tprov_hmac_key_t g_hmac_storage;
static tprov_key_t g_hmac_key;
static tprov_p256_key_t g_p256_storage;
static tprov_key_t g_p256_key;
static fuzz_opener_t g_openers[FUZZ_OPENER_COUNT];

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: broken promise: %s\n", file, line, what);
    abort();
}

/* Blinding randomness for mbedTLS's scalar multiplications: results do not depend on it. */
static int fuzz_rng(void *ctx, unsigned char *out, size_t len)
{
    static uint32_t state = 0x2545F491u;
    size_t i;

    (void)ctx;
    for (i = 0; i < len; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        out[i] = (unsigned char)state;
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *claim_message = CLAIM_LABEL FUZZ_CLAIM_DEVICE;

    (void)argc;
    (void)argv;
    if (tprov_derive_seal_key(FUZZ_DEVICE_ID, FUZZ_TIMESTAMP, FUZZ_DEVICE_KEY_B64, g_seal_key) !=
            TPROV_OK ||
        mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                        (const unsigned char *)FUZZ_CLAIM_SECRET, strlen(FUZZ_CLAIM_SECRET),
                        (const unsigned char *)claim_message, strlen(claim_message),
                        g_claim_seal_key) != 0 ||
        tprov_key_from_device_key(&g_hmac_key, &g_hmac_storage, FUZZ_DEVICE_KEY_B64) != TPROV_OK ||
        tprov_key_from_p256(&g_p256_key, &g_p256_storage, X509_DEVICE_D, fuzz_rng, NULL) !=
            TPROV_OK) {
        fprintf(stderr, "fuzz: the test vectors' keys were refused\n");
        exit(2);
    }
    g_openers[FUZZ_OPENER_SEAL_KEY] = (fuzz_opener_t){ "seal key (device key vector)", g_seal_key,
                                                       NULL, FUZZ_DEVICE_ID, TPROV_SEAL_MODE_HMAC };
    g_openers[FUZZ_OPENER_DEVICE_KEY] = (fuzz_opener_t){ "tprov_key_from_device_key", NULL,
                                                         &g_hmac_key, FUZZ_DEVICE_ID,
                                                         TPROV_SEAL_MODE_HMAC };
    g_openers[2] = (fuzz_opener_t){ "claim secret's seal key", g_claim_seal_key, NULL,
                                    FUZZ_CLAIM_DEVICE, 0u };
    g_openers[3] = (fuzz_opener_t){ "tprov_key_from_p256 (X.509 vector)", NULL, &g_p256_key,
                                    FUZZ_DEVICE_ID, TPROV_SEAL_MODE_ECDH };
    return 0;
}

const fuzz_opener_t *fuzz_openers(void)
{
    return g_openers;
}

tprov_status_t fuzz_parse_sealed(const fuzz_opener_t *opener, const char *body, size_t len,
                                 const char *expected_device, tprov_response_t *out)
{
    if (opener->key != NULL) {
        return tprov_parse_response_with_key(body, len, expected_device, FUZZ_TIMESTAMP,
                                             opener->key, out);
    }
    return tprov_parse_sealed_response(body, len, expected_device, opener->seal_key, out);
}

tprov_status_t fuzz_open_sealed(const fuzz_opener_t *opener, const char *sealed, size_t len,
                                const char *username, const char *device, const char *host,
                                char *out, size_t out_size)
{
    if (opener->key != NULL) {
        return tprov_open_sealed_with_key(sealed, len, opener->key, device, FUZZ_TIMESTAMP,
                                          username, host, out, out_size);
    }
    return tprov_open_sealed(sealed, len, opener->seal_key, username, device, host, out,
                             out_size);
}

int fuzz_all_zero(const void *p, size_t len)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t i;

    for (i = 0; i < len; i++) {
        if (b[i] != 0u) {
            return 0;
        }
    }
    return 1;
}

void fuzz_check_status(tprov_status_t status)
{
    FUZZ_ASSERT(strcmp(tprov_status_name(status), "TPROV_UNKNOWN") != 0);
}

/* The NUL-terminated length of a field, or abort when it has no NUL. */
static size_t field_len(const char *field, size_t size)
{
    const char *nul = (const char *)memchr(field, '\0', size);

    FUZZ_ASSERT(nul != NULL);
    return (size_t)(nul - field);
}

static int all_of(const char *s, const char *alphabet)
{
    return s[strspn(s, alphabet)] == '\0';
}

#define THINGER_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
#define HOSTNAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-"
#define ERROR_CODE_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"

static int is_visible_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20u || (unsigned char)*s >= 0x7Fu) {
            return 0;
        }
    }
    return 1;
}

/* ^[A-Za-z0-9.-]{1,253}(:port)?$, the port 1 to 65535 in at most 5 digits. */
static int is_host(const char *host)
{
    size_t name_len = strspn(host, HOSTNAME_CHARS);
    const char *port = host + name_len;
    unsigned long value;
    size_t port_len;

    if (name_len == 0 || name_len > 253u) {
        return 0;
    }
    if (*port == '\0') {
        return 1;
    }
    port_len = strspn(port + 1, "0123456789");
    if (*port != ':' || port_len == 0 || port_len > 5u || port[1 + port_len] != '\0') {
        return 0;
    }
    value = strtoul(port + 1, NULL, 10);
    return value >= 1u && value <= 65535u;
}

void fuzz_check_response(tprov_status_t status, const tprov_response_t *r,
                         const char *expected_device)
{
    size_t len;

    fuzz_check_status(status);
    if (status != TPROV_OK) {
        FUZZ_ASSERT(fuzz_all_zero(r, sizeof *r));
        return;
    }
    FUZZ_ASSERT(r->kind == TPROV_RESPONSE_SUCCESS || r->kind == TPROV_RESPONSE_ERROR);
    if (r->kind == TPROV_RESPONSE_ERROR) {
        len = field_len(r->error, sizeof r->error);
        FUZZ_ASSERT(len >= 1u && len <= TPROV_ERROR_CODE_MAX_LEN && all_of(r->error, ERROR_CODE_CHARS));
        FUZZ_ASSERT(fuzz_all_zero(r->username, sizeof r->username));
        FUZZ_ASSERT(fuzz_all_zero(r->device, sizeof r->device));
        FUZZ_ASSERT(fuzz_all_zero(r->credential, sizeof r->credential));
        FUZZ_ASSERT(fuzz_all_zero(r->host, sizeof r->host));
        FUZZ_ASSERT(!r->created);
        FUZZ_ASSERT(!r->has_server_time || r->server_time <= TPROV_SERVER_TIME_MAX);
        FUZZ_ASSERT(r->has_server_time || r->server_time == 0u);
        FUZZ_ASSERT(r->has_retry_after || r->retry_after_secs == 0u);
        return;
    }
    len = field_len(r->username, sizeof r->username);
    FUZZ_ASSERT(len >= 1u && len <= TPROV_USERNAME_MAX_LEN && all_of(r->username, THINGER_ID_CHARS));
    field_len(r->device, sizeof r->device);
    FUZZ_ASSERT(tprov_validate_device_id(r->device) == TPROV_OK);
    FUZZ_ASSERT(expected_device == NULL || strcmp(r->device, expected_device) == 0);
    len = field_len(r->credential, sizeof r->credential);
    FUZZ_ASSERT(len >= 1u && len <= TPROV_CREDENTIAL_MAX_LEN && is_visible_ascii(r->credential));
    field_len(r->host, sizeof r->host);
    FUZZ_ASSERT(is_host(r->host));
    FUZZ_ASSERT(fuzz_all_zero(r->error, sizeof r->error));
    FUZZ_ASSERT(!r->has_retry_after && !r->has_server_time);
}

static const long HTTP_STATUSES[] = { 0,   200, 201, 202, 204, 299, 301, 400, 401, 403, 404,
                                      408, 409, 413, 415, 429, 500, 502, 503, 504, -1,  LONG_MAX,
                                      LONG_MIN };

static int is_transient_http(long http_status)
{
    return http_status == 0 || http_status == 408 || http_status == 429 || http_status == 500 ||
           http_status == 502 || http_status == 503 || http_status == 504;
}

/* docs/firmware.md, "Status codes and what a device does", as a function. */
static tprov_next_t documented_next(long http_status, tprov_status_t status,
                                    const tprov_response_t *r)
{
    if (status != TPROV_OK) {
        return is_transient_http(http_status) ? TPROV_NEXT_RETRY_LATER : TPROV_NEXT_GIVE_UP;
    }
    if (r->kind == TPROV_RESPONSE_SUCCESS) {
        return http_status == 200 || http_status == 201 ? TPROV_NEXT_STORE_CREDENTIALS
                                                        : TPROV_NEXT_GIVE_UP;
    }
    /* An error in a 2xx, or a response that is neither (no parser makes one): nothing to do. */
    if (r->kind != TPROV_RESPONSE_ERROR || (http_status >= 200 && http_status <= 299)) {
        return TPROV_NEXT_GIVE_UP;
    }
    if ((strcmp(r->error, "clock_skew") == 0 || strcmp(r->error, "replayed") == 0) &&
        r->has_server_time) {
        return TPROV_NEXT_RETRY_WITH_SERVER_TIME;
    }
    if (strcmp(r->error, "clock_skew") == 0) {
        return TPROV_NEXT_GIVE_UP;
    }
    return r->has_retry_after || http_status == 429 || http_status == 503 ? TPROV_NEXT_RETRY_LATER
                                                                         : TPROV_NEXT_GIVE_UP;
}

void fuzz_check_next_step(long http_status, tprov_status_t status, const tprov_response_t *r)
{
    FUZZ_ASSERT(tprov_next_step(http_status, status, r) == documented_next(http_status, status, r));
}

void fuzz_check_next_steps(tprov_status_t status, const tprov_response_t *r)
{
    size_t i;

    for (i = 0; i < sizeof HTTP_STATUSES / sizeof HTTP_STATUSES[0]; i++) {
        fuzz_check_next_step(HTTP_STATUSES[i], status, r);
    }
    if (status == TPROV_OK && r->kind == TPROV_RESPONSE_ERROR) {
        /* The Linux client's and the sketch's backoff over what the answer said. */
        uint64_t wait_ms = r->has_retry_after ? (uint64_t)(r->retry_after_secs < TPROV_RETRY_AFTER_MAX_SECS
                                                               ? r->retry_after_secs
                                                               : TPROV_RETRY_AFTER_MAX_SECS) * 1000u
                                              : 0u;
        uint32_t low = tprov_retry_delay_ms(1, 5000, 900000, r->has_retry_after,
                                            r->retry_after_secs, 0);
        uint32_t high = tprov_retry_delay_ms(9, 5000, 900000, r->has_retry_after,
                                             r->retry_after_secs, UINT32_MAX);

        FUZZ_ASSERT(low == wait_ms);
        FUZZ_ASSERT(high >= wait_ms && high <= wait_ms + 900000u);
    }
}
