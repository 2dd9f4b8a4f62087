/* Heap use of the core and the mbedTLS calls it makes, per operation: linked against the static
 * mbedTLS with calloc and free wrapped (make heap), it prints how many blocks each operation
 * allocates and its peak of live bytes. The core itself never allocates; what is counted here is
 * mbedTLS's own: the AES context of GCM, the big numbers and precomputed points of P-256. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thinger_provision.h"

void *__real_calloc(size_t count, size_t size);
void __real_free(void *p);
void *__wrap_calloc(size_t count, size_t size);
void __wrap_free(void *p);

#define HEADER 16u

static size_t g_live;
static size_t g_peak;
static size_t g_blocks;

void *__wrap_calloc(size_t count, size_t size)
{
    unsigned char *p;

    if (size != 0 && count > (SIZE_MAX - HEADER) / size) {
        return NULL;
    }
    p = __real_calloc(1, HEADER + count * size);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, &(size_t){ count * size }, sizeof(size_t));
    g_live += count * size;
    g_blocks++;
    if (g_live > g_peak) {
        g_peak = g_live;
    }
    return p + HEADER;
}

void __wrap_free(void *p)
{
    size_t size;

    if (p == NULL) {
        return;
    }
    memcpy(&size, (unsigned char *)p - HEADER, sizeof size);
    g_live -= size;
    __real_free((unsigned char *)p - HEADER);
}

#define DEVICE "esp32_a1b2c3d4e5f6"
#define TIMESTAMP 1764150000u
#define DEVICE_KEY_B64 "slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA="
#define HMAC_BODY                                                                                \
    "username=acme\ndevice=esp32_a1b2c3d4e5f6\nsealed=AQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRC" \
    "ewti+w3wMslflAGzlPfBBqmJ3DL2K\nhost=backend.thinger.io\ncreated=true\n"
#define ECDH_BODY                                                                                \
    "username=acme\ndevice=esp32_a1b2c3d4e5f6\nsealed=AQMEl1bELjGsgI7WjwzAmGgW0mFMRwEKT0Pqy6NmP7b" \
    "uMjiziYCa0b5alkpe41o9ltrvS5ixtrdP4+IdoNyuz6JdLAABAgMEBQYHCAkKC2+DmAyfADnKSwBgUKVly8cl7aSPi0x" \
    "Vo+zaRumDRCMk+AqhYEcGNBM=\nhost=backend.thinger.io\ncreated=true\n"
static const unsigned char P256_D[32] = {
    0x72, 0x84, 0xac, 0x89, 0x62, 0x18, 0xef, 0x99, 0x16, 0x91, 0x5d, 0x16, 0x51, 0x8b, 0xeb, 0x2f,
    0xde, 0x42, 0x28, 0x25, 0x84, 0xcc, 0x3f, 0x2a, 0x1e, 0x5f, 0xa9, 0xdc, 0x28, 0x28, 0xfa, 0x83
};
static const unsigned char FAKE_DER[470] = { 0x30 };
/* The answer key of the test vector (docs/protocol.md), the vector request's SHA-256, and the two
 * answers above signed with it over that hash. */
#define ANSWER_KEY_B64 \
    "BEbkvrsJVTiANGn39mDOrQWXj91l36YhFVMPWCJAAN3SmWYqOVaMp02n7TaXb1+Xre6vE9XF17zKCrCSxpVvpfY="
static const unsigned char REQUEST_HASH[TPROV_REQUEST_HASH_LEN] = {
    0xa5, 0xd5, 0x79, 0x4b, 0x07, 0x47, 0x69, 0x89, 0xa2, 0xec, 0x44, 0x1f, 0x40, 0x5d, 0x03, 0x74,
    0x1a, 0xc3, 0xe5, 0x7e, 0x60, 0x6e, 0x95, 0xc6, 0xbd, 0x16, 0x0c, 0x3d, 0x58, 0x33, 0x17, 0x27
};
#define SIGNED_HMAC_BODY \
    HMAC_BODY "answer_signature=K1joCV2F7+XW5XfREMrm12yi/vh62Hjhfbauoi/VW9OWP/veELAdPewKVrxzmX/" \
              "Qf2iqvCYnHIjX+EeSTfe8Ow==\n"
#define SIGNED_ECDH_BODY \
    ECDH_BODY "answer_signature=Ux94lWJ1jjCMJ4NwUpC4+6uImssJ6RAvj5prQh+4XpxVUzgC4IqG5KXm0ILSUONCpwj" \
              "DUXrDxnKxM76WojNd9g==\n"

static int counter_rng(void *ctx, unsigned char *out, size_t len)
{
    static unsigned char next;

    (void)ctx;
    while (len-- > 0) {
        *out++ = next++;
    }
    return 0;
}

static int g_failures;

/* Prints the operation's numbers; an operation of the device-key path that allocates, or one that
 * leaks, is a regression (exit 1). */
static void report(const char *operation, tprov_status_t status, int must_not_allocate)
{
    if (status != TPROV_OK || g_live != 0 || (must_not_allocate && g_blocks != 0)) {
        g_failures++;
        printf("FAIL ");
    }
    printf("%-44s %-9s %3zu blocks, peak %6zu bytes, %zu left\n", operation,
           status == TPROV_OK ? "ok" : tprov_status_name(status), g_blocks, g_peak, g_live);
    g_blocks = 0;
    g_peak = g_live;
}

int main(void)
{
    static char body[TPROV_X509_REQUEST_BODY_MAX_LEN + 1];
    unsigned char request_hash[TPROV_REQUEST_HASH_LEN];
    unsigned char answer_key[TPROV_P256_POINT_LEN];
    tprov_answer_keys_t pinned = { { NULL, NULL }, 0, NULL, NULL };
    tprov_request_options_t sealed = { NULL, 0, true, NULL };
    tprov_certificate_t certificate = { FAKE_DER, sizeof FAKE_DER, NULL, 0 };
    tprov_hmac_key_t hmac_storage;
    tprov_p256_key_t p256_storage;
    tprov_key_t hmac_key;
    tprov_key_t p256_key;
    tprov_response_t response;
    size_t len = 0;
    tprov_status_t status;

    status = tprov_key_from_device_key(&hmac_key, &hmac_storage, DEVICE_KEY_B64);
    report("device key: tprov_key_from_device_key", status, 1);
    status = tprov_build_request(DEVICE, TIMESTAMP, &hmac_key, &sealed, NULL, body, sizeof body, &len);
    report("device key: tprov_build_request (v2)", status, 1);
    sealed.request_hash = request_hash;
    status = tprov_build_request(DEVICE, TIMESTAMP, &hmac_key, &sealed, NULL, body, sizeof body, &len);
    report("device key: build request + its SHA-256", status, 1);
    status = tprov_parse_response_with_key(HMAC_BODY, strlen(HMAC_BODY), DEVICE, TIMESTAMP, &hmac_key,
                                           &response);
    report("device key: open the sealed answer (GCM)", status, 0);

    status = tprov_answer_key_from_base64(ANSWER_KEY_B64, answer_key);
    report("answer key: tprov_answer_key_from_base64", status, 0);
    pinned.keys[0] = answer_key;
    pinned.count = 1;
    status = tprov_parse_answer(SIGNED_HMAC_BODY, strlen(SIGNED_HMAC_BODY), DEVICE, TIMESTAMP,
                                &hmac_key, &pinned, REQUEST_HASH, &response);
    report("device key: verify (ECDSA) and open (GCM)", status, 0);

    status = tprov_key_from_p256(&p256_key, &p256_storage, P256_D, counter_rng, NULL);
    report("P-256: tprov_key_from_p256 (range check)", status, 0);
    status = tprov_build_request(DEVICE, TIMESTAMP, &p256_key, &sealed, &certificate, body,
                                 sizeof body, &len);
    report("P-256: tprov_build_request (ECDSA sign)", status, 0);
    status = tprov_parse_answer(ECDH_BODY, strlen(ECDH_BODY), DEVICE, TIMESTAMP, &p256_key, NULL,
                                NULL, &response);
    /* Without a pinned answer key a mode-3 answer is refused before any ECDH: nothing allocated. */
    report("P-256: mode 3, no answer key (refused)", status == TPROV_ERR_ANSWER_KEY_REQUIRED ? TPROV_OK : status, 1);
    status = tprov_parse_answer(SIGNED_ECDH_BODY, strlen(SIGNED_ECDH_BODY), DEVICE, TIMESTAMP,
                                &p256_key, &pinned, REQUEST_HASH, &response);
    report("P-256: verify (ECDSA), open (ECDH + GCM)", status, 0);
    tprov_memzero(&hmac_storage, sizeof hmac_storage);
    tprov_memzero(&p256_storage, sizeof p256_storage);
    tprov_memzero(&response, sizeof response);
    return g_failures == 0 ? 0 : 1;
}
