/* thinger_provision: see thinger_provision.h for the contract of each function. */
#include "thinger_provision.h"

#include <string.h>

#include "mbedtls/base64.h"
#include "mbedtls/bignum.h"
#include "mbedtls/ecdh.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
#include "mbedtls/gcm.h"
#include "mbedtls/md.h"
#include "mbedtls/sha256.h"
#include "mbedtls/version.h"

/* SHA-256 by the names of the mbedTLS in use: 2.28's *_ret calls became the plain names in 3.0. */
#if MBEDTLS_VERSION_MAJOR >= 3
#define SHA256_STARTS(ctx) mbedtls_sha256_starts((ctx), 0)
#define SHA256_UPDATE mbedtls_sha256_update
#define SHA256_FINISH mbedtls_sha256_finish
#else
#define SHA256_STARTS(ctx) mbedtls_sha256_starts_ret((ctx), 0)
#define SHA256_UPDATE mbedtls_sha256_update_ret
#define SHA256_FINISH mbedtls_sha256_finish_ret
#endif

#define U64_MAX_DIGITS 20
#define SHA256_LEN 32
#define SHA256_BLOCK_LEN 64
#define SEAL_LABEL "thinger-provisioner seal v1\nhmac\n"
#define SEAL_LABEL_ECDH "thinger-provisioner seal v1\necdh\n"
#define ANSWER_LABEL "thinger-provisioner answer v1\n"
#define SEAL_MODE_CLAIM 2
/* The longest prefix ("v1\n", "v2\n", SEAL_LABEL or SEAL_LABEL_ECDH) + device ID + "\n" +
 * timestamp */
#define SIGNED_MESSAGE_MAX_LEN (sizeof SEAL_LABEL - 1u + TPROV_DEVICE_ID_MAX_LEN + 1 + U64_MAX_DIGITS)
#define SEAL_HEADER_LEN 2
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
/* Associated data: the envelope's bytes before the nonce (header and the mode's own header),
 * then username "\n" device "\n" host. */
#define SEAL_AAD_MAX_LEN                                                                 \
    (SEAL_HEADER_LEN + TPROV_P256_POINT_LEN + TPROV_USERNAME_MAX_LEN + 1 +                 \
     TPROV_DEVICE_ID_MAX_LEN + 1 + TPROV_HOST_MAX_LEN)
#define RSA_SIGNATURE_MIN_LEN 256 /* RSA 2048 */
#define PORT_MAX 65535u
/* base64 of TPROV_FLEET_KEY_MAX_LEN bytes, with padding */
#define FLEET_KEY_B64_MAX_LEN (((TPROV_FLEET_KEY_MAX_LEN + 2) / 3) * 4)
/* Decoders get a few spare bytes so that a library's length estimate never rejects a good key;
 * the decoded length is checked exactly afterwards. */
#define DECODE_SLACK 4

/* One bit per known response key, to refuse duplicates. */
#define SEEN_USERNAME 0x01u
#define SEEN_DEVICE 0x02u
#define SEEN_CREDENTIAL 0x04u
#define SEEN_HOST 0x08u
#define SEEN_CREATED 0x10u
#define SEEN_ERROR 0x20u
#define SEEN_RETRY_AFTER 0x40u
#define SEEN_SERVER_TIME 0x80u
#define SEEN_SEALED 0x100u
#define SEEN_ANSWER_SIGNATURE 0x200u
#define SEEN_ALL_SUCCESS (SEEN_USERNAME | SEEN_DEVICE | SEEN_HOST | SEEN_CREATED)

void tprov_memzero(void *p, size_t len)
{
    volatile unsigned char *v = (volatile unsigned char *)p;

    while (len > 0) {
        *v++ = 0;
        len--;
    }
}

const char *tprov_status_name(tprov_status_t status)
{
    switch (status) {
    case TPROV_OK: return "TPROV_OK";
    case TPROV_ERR_ARGUMENT: return "TPROV_ERR_ARGUMENT";
    case TPROV_ERR_BUFFER_TOO_SMALL: return "TPROV_ERR_BUFFER_TOO_SMALL";
    case TPROV_ERR_DEVICE_ID: return "TPROV_ERR_DEVICE_ID";
    case TPROV_ERR_KEY: return "TPROV_ERR_KEY";
    case TPROV_ERR_CRYPTO: return "TPROV_ERR_CRYPTO";
    case TPROV_ERR_RESPONSE_EMPTY: return "TPROV_ERR_RESPONSE_EMPTY";
    case TPROV_ERR_RESPONSE_TOO_LARGE: return "TPROV_ERR_RESPONSE_TOO_LARGE";
    case TPROV_ERR_RESPONSE_TRUNCATED: return "TPROV_ERR_RESPONSE_TRUNCATED";
    case TPROV_ERR_RESPONSE_SYNTAX: return "TPROV_ERR_RESPONSE_SYNTAX";
    case TPROV_ERR_RESPONSE_DUPLICATE: return "TPROV_ERR_RESPONSE_DUPLICATE";
    case TPROV_ERR_RESPONSE_VALUE_TOO_LONG: return "TPROV_ERR_RESPONSE_VALUE_TOO_LONG";
    case TPROV_ERR_RESPONSE_VALUE: return "TPROV_ERR_RESPONSE_VALUE";
    case TPROV_ERR_RESPONSE_MISSING: return "TPROV_ERR_RESPONSE_MISSING";
    case TPROV_ERR_RESPONSE_DEVICE_MISMATCH: return "TPROV_ERR_RESPONSE_DEVICE_MISMATCH";
    case TPROV_ERR_REQUEST_OPTION: return "TPROV_ERR_REQUEST_OPTION";
    case TPROV_ERR_SEALED: return "TPROV_ERR_SEALED";
    case TPROV_ERR_RESPONSE_NOT_SEALED: return "TPROV_ERR_RESPONSE_NOT_SEALED";
    case TPROV_ERR_KEY_CALLBACK: return "TPROV_ERR_KEY_CALLBACK";
    case TPROV_ERR_ANSWER_SIGNATURE: return "TPROV_ERR_ANSWER_SIGNATURE";
    case TPROV_ERR_ANSWER_KEY_REQUIRED: return "TPROV_ERR_ANSWER_KEY_REQUIRED";
    }
    return "TPROV_UNKNOWN";
}

/* Character classes by value, not <ctype.h>, so that no locale can widen them. */
static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
    return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_device_id_char(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '-';
}

static bool is_base64_char(unsigned char c)
{
    return is_alnum(c) || c == '+' || c == '/';
}

static bool is_key_char(unsigned char c)
{
    return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

static bool is_control(unsigned char c)
{
    return c < 0x20u || c == 0x7Fu;
}

tprov_status_t tprov_validate_device_id(const char *device_id)
{
    size_t i;

    if (device_id == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    for (i = 0; device_id[i] != '\0'; i++) {
        if (i == TPROV_DEVICE_ID_MAX_LEN || !is_device_id_char((unsigned char)device_id[i])) {
            return TPROV_ERR_DEVICE_ID;
        }
    }
    return i == 0 ? TPROV_ERR_DEVICE_ID : TPROV_OK;
}

/* Writes v in decimal, without a NUL; returns the number of digits. */
static size_t format_u64(uint64_t v, char out[U64_MAX_DIGITS])
{
    char reversed[U64_MAX_DIGITS];
    size_t n = 0;
    size_t i;

    do {
        reversed[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    for (i = 0; i < n; i++) {
        out[i] = reversed[n - 1u - i];
    }
    return n;
}

static tprov_status_t sha256(const unsigned char *data, size_t len, unsigned char out[SHA256_LEN])
{
    mbedtls_sha256_context ctx;
    int rc;

    mbedtls_sha256_init(&ctx);
    rc = SHA256_STARTS(&ctx);
    if (rc == 0) {
        rc = SHA256_UPDATE(&ctx, data, len);
    }
    if (rc == 0) {
        rc = SHA256_FINISH(&ctx, out);
    }
    mbedtls_sha256_free(&ctx);
    return rc == 0 ? TPROV_OK : TPROV_ERR_CRYPTO;
}

/* One half of HMAC (RFC 2104): SHA-256((key XOR pad) || data). */
static int hmac_half(mbedtls_sha256_context *ctx, const unsigned char *key, size_t key_len,
                     unsigned char pad_byte, const unsigned char *data, size_t data_len,
                     unsigned char out[SHA256_LEN])
{
    unsigned char pad[SHA256_BLOCK_LEN];
    size_t i;
    int rc;

    for (i = 0; i < sizeof pad; i++) {
        pad[i] = (unsigned char)((i < key_len ? key[i] : 0u) ^ pad_byte);
    }
    rc = SHA256_STARTS(ctx);
    if (rc == 0) {
        rc = SHA256_UPDATE(ctx, pad, sizeof pad);
    }
    if (rc == 0) {
        rc = SHA256_UPDATE(ctx, data, data_len);
    }
    if (rc == 0) {
        rc = SHA256_FINISH(ctx, out);
    }
    tprov_memzero(pad, sizeof pad);
    return rc;
}

/* HMAC-SHA256 with its state on the stack: unlike mbedtls_md_hmac(), nothing is allocated. */
static tprov_status_t hmac_sha256(const unsigned char *key, size_t key_len,
                                  const unsigned char *message, size_t message_len,
                                  unsigned char out[SHA256_LEN])
{
    mbedtls_sha256_context ctx;
    unsigned char hashed_key[SHA256_LEN];
    unsigned char inner[SHA256_LEN];
    tprov_status_t status = TPROV_OK;

    if (key_len > SHA256_BLOCK_LEN) {
        status = sha256(key, key_len, hashed_key);
        key = hashed_key;
        key_len = sizeof hashed_key;
    }
    mbedtls_sha256_init(&ctx);
    if (status == TPROV_OK &&
        (hmac_half(&ctx, key, key_len, 0x36u, message, message_len, inner) != 0 ||
         hmac_half(&ctx, key, key_len, 0x5Cu, inner, sizeof inner, out) != 0)) {
        status = TPROV_ERR_CRYPTO;
    }
    mbedtls_sha256_free(&ctx);
    tprov_memzero(hashed_key, sizeof hashed_key);
    tprov_memzero(inner, sizeof inner);
    if (status != TPROV_OK) {
        tprov_memzero(out, SHA256_LEN);
    }
    return status;
}

/* 32 bytes to 44 characters of base64 and a NUL; out_size was checked by the caller. */
static tprov_status_t encode_32(const unsigned char in[TPROV_DEVICE_KEY_LEN], char *out,
                                size_t out_size)
{
    size_t written = 0;

    if (mbedtls_base64_encode((unsigned char *)out, out_size, &written, in,
                              TPROV_DEVICE_KEY_LEN) != 0 ||
        written != TPROV_DEVICE_KEY_B64_LEN) {
        return TPROV_ERR_CRYPTO;
    }
    return TPROV_OK;
}

/* The device key must be exactly the 44 characters the factory flashed: 43 of the alphabet and
 * one '='. A stray newline or space from NVS or a file is refused here rather than guessed at. */
static tprov_status_t decode_device_key(const char *b64, unsigned char key[TPROV_DEVICE_KEY_LEN])
{
    unsigned char decoded[TPROV_DEVICE_KEY_LEN + DECODE_SLACK];
    size_t decoded_len = 0;
    size_t i;
    tprov_status_t status = TPROV_OK;

    for (i = 0; i < TPROV_DEVICE_KEY_B64_LEN - 1u; i++) {
        if (!is_base64_char((unsigned char)b64[i])) {
            return TPROV_ERR_KEY;
        }
    }
    if (b64[TPROV_DEVICE_KEY_B64_LEN - 1u] != '=' || b64[TPROV_DEVICE_KEY_B64_LEN] != '\0') {
        return TPROV_ERR_KEY;
    }
    if (mbedtls_base64_decode(decoded, sizeof decoded, &decoded_len, (const unsigned char *)b64,
                              TPROV_DEVICE_KEY_B64_LEN) != 0 ||
        decoded_len != TPROV_DEVICE_KEY_LEN) {
        status = TPROV_ERR_KEY;
    } else {
        memcpy(key, decoded, TPROV_DEVICE_KEY_LEN);
    }
    tprov_memzero(decoded, sizeof decoded);
    return status;
}

tprov_status_t tprov_derive_device_key(const char *fleet_key_b64, const char *device_id,
                                       char *out, size_t out_size)
{
    unsigned char fleet_key[TPROV_FLEET_KEY_MAX_LEN + DECODE_SLACK];
    unsigned char device_key[TPROV_DEVICE_KEY_LEN];
    size_t fleet_key_b64_len = 0;
    size_t fleet_key_len = 0;
    tprov_status_t status;

    if (fleet_key_b64 == NULL || device_id == NULL || out == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    if (out_size < TPROV_DEVICE_KEY_B64_LEN + 1u) {
        return TPROV_ERR_BUFFER_TOO_SMALL;
    }
    status = tprov_validate_device_id(device_id);
    if (status != TPROV_OK) {
        return status;
    }
    while (fleet_key_b64[fleet_key_b64_len] != '\0') {
        if (++fleet_key_b64_len > FLEET_KEY_B64_MAX_LEN) {
            return TPROV_ERR_KEY;
        }
    }
    if (mbedtls_base64_decode(fleet_key, sizeof fleet_key, &fleet_key_len,
                              (const unsigned char *)fleet_key_b64, fleet_key_b64_len) != 0 ||
        fleet_key_len < TPROV_FLEET_KEY_MIN_LEN || fleet_key_len > TPROV_FLEET_KEY_MAX_LEN) {
        status = TPROV_ERR_KEY;
    } else {
        status = hmac_sha256(fleet_key, fleet_key_len, (const unsigned char *)device_id,
                             strlen(device_id), device_key);
    }
    if (status == TPROV_OK) {
        status = encode_32(device_key, out, out_size);
    }
    tprov_memzero(fleet_key, sizeof fleet_key);
    tprov_memzero(device_key, sizeof device_key);
    if (status != TPROV_OK) {
        tprov_memzero(out, out_size);
    }
    return status;
}

/* Writes prefix device "\n" timestamp to message (SIGNED_MESSAGE_MAX_LEN bytes, no NUL): the
 * signed message ("v1\n", "v2\n") and the seal labels differ only in the prefix. The device ID
 * was validated by the caller. Returns the length. */
static size_t device_message(const char *prefix, const char *device_id, uint64_t timestamp,
                             char message[SIGNED_MESSAGE_MAX_LEN])
{
    size_t message_len = strlen(prefix);
    size_t device_id_len = strlen(device_id);

    memcpy(message, prefix, message_len);
    memcpy(message + message_len, device_id, device_id_len);
    message_len += device_id_len;
    message[message_len++] = '\n';
    message_len += format_u64(timestamp, message + message_len);
    return message_len;
}

/* The default HMAC key: the device key's bytes in the caller's storage. */
static int memory_hmac(void *ctx, const unsigned char *message, size_t message_len,
                       unsigned char mac[32])
{
    const tprov_hmac_key_t *storage = (const tprov_hmac_key_t *)ctx;

    return hmac_sha256(storage->key, sizeof storage->key, message, message_len, mac) == TPROV_OK
               ? 0
               : -1;
}

tprov_status_t tprov_key_from_device_key(tprov_key_t *key, tprov_hmac_key_t *storage,
                                         const char *device_key_b64)
{
    tprov_status_t status;

    if (key == NULL || storage == NULL || device_key_b64 == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    memset(key, 0, sizeof *key);
    status = decode_device_key(device_key_b64, storage->key);
    if (status != TPROV_OK) {
        tprov_memzero(storage, sizeof *storage);
        return status;
    }
    key->type = TPROV_KEY_HMAC;
    key->hmac = memory_hmac;
    key->ctx = storage;
    return TPROV_OK;
}

/* MAC of prefix device "\n" timestamp with the key's hmac callback: the request signature and
 * the hmac-mode seal key. */
static tprov_status_t key_mac(const tprov_key_t *key, const char *prefix, const char *device_id,
                              uint64_t timestamp, unsigned char mac[SHA256_LEN])
{
    char message[SIGNED_MESSAGE_MAX_LEN];
    size_t message_len = device_message(prefix, device_id, timestamp, message);

    if (key->hmac(key->ctx, (const unsigned char *)message, message_len, mac) != 0) {
        tprov_memzero(mac, SHA256_LEN);
        return TPROV_ERR_KEY_CALLBACK;
    }
    return TPROV_OK;
}

/* A device key given as base64, as a key of the default implementation. */
static tprov_status_t key_from_b64(const char *device_id, const char *device_key_b64,
                                   tprov_key_t *key, tprov_hmac_key_t *storage)
{
    tprov_status_t status;

    if (device_id == NULL || device_key_b64 == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    status = tprov_validate_device_id(device_id);
    if (status != TPROV_OK) {
        return status;
    }
    return tprov_key_from_device_key(key, storage, device_key_b64);
}

static tprov_status_t sign_version(const char *prefix, const char *device_id, uint64_t timestamp,
                                   const char *device_key_b64, char *out, size_t out_size)
{
    unsigned char mac[SHA256_LEN];
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_status_t status;

    if (out == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    if (out_size < TPROV_SIGNATURE_B64_LEN + 1u) {
        return TPROV_ERR_BUFFER_TOO_SMALL;
    }
    status = key_from_b64(device_id, device_key_b64, &key, &storage);
    if (status == TPROV_OK) {
        status = key_mac(&key, prefix, device_id, timestamp, mac);
    }
    if (status == TPROV_OK) {
        status = encode_32(mac, out, out_size);
    }
    tprov_memzero(&storage, sizeof storage);
    tprov_memzero(mac, sizeof mac);
    return status;
}

tprov_status_t tprov_sign(const char *device_id, uint64_t timestamp, const char *device_key_b64,
                          char *out, size_t out_size)
{
    return sign_version("v1\n", device_id, timestamp, device_key_b64, out, out_size);
}

tprov_status_t tprov_derive_seal_key(const char *device_id, uint64_t timestamp,
                                     const char *device_key_b64,
                                     unsigned char key[TPROV_SEAL_KEY_LEN])
{
    tprov_hmac_key_t storage;
    tprov_key_t device_key;
    tprov_status_t status;

    if (key == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    status = key_from_b64(device_id, device_key_b64, &device_key, &storage);
    if (status == TPROV_OK) {
        status = key_mac(&device_key, SEAL_LABEL, device_id, timestamp, key);
    }
    tprov_memzero(&storage, sizeof storage);
    if (status != TPROV_OK) {
        tprov_memzero(key, TPROV_SEAL_KEY_LEN);
    }
    return status;
}

/* ---- The default P-256 key: mbedTLS with the scalar in memory ---- */

/* Loads P-256 and the scalar; mbedTLS allocates the numbers' limbs. */
static int p256_load(const tprov_p256_key_t *storage, mbedtls_ecp_group *grp, mbedtls_mpi *d)
{
    int rc = mbedtls_ecp_group_load(grp, MBEDTLS_ECP_DP_SECP256R1);

    if (rc == 0) {
        rc = mbedtls_mpi_read_binary(d, storage->d, sizeof storage->d);
    }
    return rc;
}

static int p256_sign(void *ctx, const unsigned char digest[32], unsigned char *signature,
                     size_t signature_size, size_t *signature_len)
{
    const tprov_p256_key_t *storage = (const tprov_p256_key_t *)ctx;
    mbedtls_ecp_group grp;
    mbedtls_mpi d;
    mbedtls_mpi r;
    mbedtls_mpi s;
    int rc;

    if (signature_size < TPROV_ECDSA_P256_SIGNATURE_LEN) {
        return -1;
    }
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = p256_load(storage, &grp, &d);
    if (rc == 0) {
#if defined(MBEDTLS_ECDSA_DETERMINISTIC)
        /* RFC 6979: k comes from the key and the digest, so a weak RNG cannot leak the key. */
        rc = mbedtls_ecdsa_sign_det_ext(&grp, &r, &s, &d, digest, SHA256_LEN, MBEDTLS_MD_SHA256,
                                        storage->rng, storage->rng_ctx);
#else
        rc = mbedtls_ecdsa_sign(&grp, &r, &s, &d, digest, SHA256_LEN, storage->rng,
                                storage->rng_ctx);
#endif
    }
    if (rc == 0) {
        rc = mbedtls_mpi_write_binary(&r, signature, TPROV_P256_SCALAR_LEN);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_write_binary(&s, signature + TPROV_P256_SCALAR_LEN, TPROV_P256_SCALAR_LEN);
    }
    if (rc == 0) {
        *signature_len = TPROV_ECDSA_P256_SIGNATURE_LEN;
    }
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

static int p256_ecdh(void *ctx, const unsigned char peer[TPROV_P256_POINT_LEN],
                     unsigned char shared_x[32])
{
    const tprov_p256_key_t *storage = (const tprov_p256_key_t *)ctx;
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi d;
    mbedtls_mpi z;
    int rc;

    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&d);
    mbedtls_mpi_init(&z);
    rc = p256_load(storage, &grp, &d);
    if (rc == 0) {
        rc = mbedtls_ecp_point_read_binary(&grp, &q, peer, TPROV_P256_POINT_LEN);
    }
    if (rc == 0) {
        /* A point off the curve would leak bits of d (invalid-curve attack). */
        rc = mbedtls_ecp_check_pubkey(&grp, &q);
    }
    if (rc == 0) {
        rc = mbedtls_ecdh_compute_shared(&grp, &z, &q, &d, storage->rng, storage->rng_ctx);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_write_binary(&z, shared_x, TPROV_P256_SCALAR_LEN);
    }
    mbedtls_mpi_free(&z);
    mbedtls_mpi_free(&d);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

tprov_status_t tprov_key_from_p256(tprov_key_t *key, tprov_p256_key_t *storage,
                                   const unsigned char d[TPROV_P256_SCALAR_LEN], tprov_rng_fn rng,
                                   void *rng_ctx)
{
    mbedtls_ecp_group grp;
    mbedtls_mpi scalar;
    tprov_status_t status = TPROV_OK;
    int rc;

    if (key == NULL || storage == NULL || d == NULL || rng == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    memset(key, 0, sizeof *key);
    memcpy(storage->d, d, sizeof storage->d);
    storage->rng = rng;
    storage->rng_ctx = rng_ctx;
    mbedtls_ecp_group_init(&grp);
    mbedtls_mpi_init(&scalar);
    rc = p256_load(storage, &grp, &scalar);
    if (rc != 0) {
        status = TPROV_ERR_CRYPTO;
    } else if (mbedtls_ecp_check_privkey(&grp, &scalar) != 0) {
        status = TPROV_ERR_KEY;
    }
    mbedtls_mpi_free(&scalar);
    mbedtls_ecp_group_free(&grp);
    if (status != TPROV_OK) {
        tprov_memzero(storage, sizeof *storage);
        return status;
    }
    key->type = TPROV_KEY_P256;
    key->sign = p256_sign;
    key->ecdh = p256_ecdh;
    key->ctx = storage;
    return TPROV_OK;
}

/* A bounded string builder: appends until the buffer is full, then only records overflow. */
typedef struct {
    char *buf;
    size_t size;
    size_t len;
    bool overflow;
} writer_t;

static void append(writer_t *w, const char *data, size_t data_len)
{
    if (w->overflow || data_len >= w->size - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, data, data_len);
    w->len += data_len;
    w->buf[w->len] = '\0';
}

static void append_str(writer_t *w, const char *s)
{
    append(w, s, strlen(s));
}

/* Appends base64 of data, encoded in place: no second buffer for a certificate. */
static void append_base64(writer_t *w, const unsigned char *data, size_t data_len)
{
    size_t written = 0;

    if (w->overflow) {
        return;
    }
    if (mbedtls_base64_encode((unsigned char *)w->buf + w->len, w->size - w->len, &written, data,
                              data_len) != 0) {
        w->overflow = true; /* the only failure of mbedtls_base64_encode: no room */
        return;
    }
    w->len += written;
}

#define FLEET_NAME_MAX_LEN 32
#define KEY_VERSION_MAX 999u

static bool valid_fleet_name(const char *fleet)
{
    size_t i;

    for (i = 0; fleet[i] != '\0'; i++) {
        unsigned char c = (unsigned char)fleet[i];
        if (i >= FLEET_NAME_MAX_LEN ||
            !((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-')) {
            return false;
        }
    }
    return i > 0;
}

/* The fleet a request names: NULL for the service's default ("" or no options). */
static const char *request_fleet(const tprov_request_options_t *options)
{
    return options != NULL && options->fleet != NULL && options->fleet[0] != '\0' ? options->fleet
                                                                                  : NULL;
}

/* The options every request shares: a fleet name and a key version within the protocol's rules. */
static bool valid_fleet_and_version(const tprov_request_options_t *options)
{
    const char *fleet = request_fleet(options);

    return (fleet == NULL || valid_fleet_name(fleet)) &&
           (options == NULL || options->key_version <= KEY_VERSION_MAX);
}

static bool valid_key(const tprov_key_t *key)
{
    switch (key->type) {
    case TPROV_KEY_HMAC: return key->hmac != NULL;
    case TPROV_KEY_P256: /* fall through */
    case TPROV_KEY_RSA: return key->sign != NULL;
    }
    return false;
}

/* The combinations of key, certificate and options the protocol refuses. */
static bool valid_request_options(const tprov_key_t *key, const tprov_request_options_t *options,
                                  const tprov_certificate_t *certificate)
{
    uint32_t key_version = options != NULL ? options->key_version : 0u;
    bool sealed = options != NULL && options->sealed;

    if (!valid_fleet_and_version(options)) {
        return false;
    }
    if (key->type == TPROV_KEY_HMAC) {
        return certificate == NULL;
    }
    if (certificate == NULL || certificate->der == NULL || certificate->der_len == 0 ||
        (certificate->chain_der != NULL && certificate->chain_der_len == 0) || key_version > 1u) {
        return false;
    }
    /* A sealed answer is opened by ECDH: RSA keys and sign-only P-256 keys get v1 answers. */
    return !sealed || (key->type == TPROV_KEY_P256 && key->ecdh != NULL);
}

/* Signs the message with an X.509 key: base64 of the signature into w. */
static tprov_status_t append_x509_signature(writer_t *w, const tprov_key_t *key,
                                            const char *message, size_t message_len)
{
    unsigned char digest[SHA256_LEN];
    unsigned char signature[TPROV_SIGNATURE_MAX_LEN];
    size_t signature_len = 0;
    tprov_status_t status = sha256((const unsigned char *)message, message_len, digest);

    if (status == TPROV_OK &&
        key->sign(key->ctx, digest, signature, sizeof signature, &signature_len) != 0) {
        status = TPROV_ERR_KEY_CALLBACK;
    }
    /* A callback that claims more than it may write, or a length no key of its type makes. */
    if (status == TPROV_OK &&
        (key->type == TPROV_KEY_P256 ? signature_len != TPROV_ECDSA_P256_SIGNATURE_LEN
                                     : signature_len < RSA_SIGNATURE_MIN_LEN ||
                                           signature_len > sizeof signature)) {
        status = TPROV_ERR_KEY_CALLBACK;
    }
    if (status == TPROV_OK) {
        append_base64(w, signature, signature_len);
    }
    tprov_memzero(digest, sizeof digest);
    tprov_memzero(signature, sizeof signature);
    return status;
}

tprov_status_t tprov_build_request(const char *device_id, uint64_t timestamp,
                                   const tprov_key_t *key,
                                   const tprov_request_options_t *options,
                                   const tprov_certificate_t *certificate, char *out,
                                   size_t out_size, size_t *out_len)
{
    const char *fleet = request_fleet(options);
    uint32_t key_version = options != NULL ? options->key_version : 0u;
    bool sealed = options != NULL && options->sealed;
    char message[SIGNED_MESSAGE_MAX_LEN];
    size_t message_len;
    char digits[U64_MAX_DIGITS];
    writer_t w;
    tprov_status_t status = TPROV_OK;

    if (out == NULL || out_len == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    *out_len = 0;
    if (out_size == 0) {
        return TPROV_ERR_BUFFER_TOO_SMALL;
    }
    out[0] = '\0';
    if (device_id == NULL || key == NULL || !valid_key(key)) {
        return TPROV_ERR_ARGUMENT;
    }
    if (!valid_request_options(key, options, certificate)) {
        return TPROV_ERR_REQUEST_OPTION;
    }
    status = tprov_validate_device_id(device_id);
    if (status != TPROV_OK) {
        return status;
    }
    message_len = device_message(sealed ? "v2\n" : "v1\n", device_id, timestamp, message);

    /* The device ID and base64 need no JSON escaping: their alphabets hold no '"' or '\'. */
    w.buf = out;
    w.size = out_size;
    w.len = 0;
    w.overflow = false;
    append_str(&w, "{\"device\":\"");
    append_str(&w, device_id);
    append_str(&w, "\",\"timestamp\":");
    append(&w, digits, format_u64(timestamp, digits));
    append_str(&w, ",\"signature\":\"");
    if (key->type == TPROV_KEY_HMAC) {
        unsigned char mac[SHA256_LEN];

        if (key->hmac(key->ctx, (const unsigned char *)message, message_len, mac) != 0) {
            status = TPROV_ERR_KEY_CALLBACK;
        } else {
            append_base64(&w, mac, sizeof mac);
        }
        tprov_memzero(mac, sizeof mac);
    } else {
        status = append_x509_signature(&w, key, message, message_len);
    }
    append_str(&w, "\"");
    /* The fleet name's alphabet needs no JSON escaping either. */
    if (fleet != NULL) {
        append_str(&w, ",\"fleet\":\"");
        append_str(&w, fleet);
        append_str(&w, "\"");
    }
    if (key_version > 1u) {
        append_str(&w, ",\"keyVersion\":");
        append(&w, digits, format_u64(key_version, digits));
    }
    if (sealed) {
        append_str(&w, ",\"version\":2");
    }
    if (certificate != NULL) {
        append_str(&w, ",\"certificate\":\"");
        append_base64(&w, certificate->der, certificate->der_len);
        append_str(&w, "\"");
        if (certificate->chain_der != NULL) {
            append_str(&w, ",\"chain\":[\"");
            append_base64(&w, certificate->chain_der, certificate->chain_der_len);
            append_str(&w, "\"]");
        }
    }
    append_str(&w, "}");

    if (status == TPROV_OK && w.overflow) {
        status = TPROV_ERR_BUFFER_TOO_SMALL;
    }
    if (status == TPROV_OK && options != NULL && options->request_hash != NULL) {
        status = sha256((const unsigned char *)out, w.len, options->request_hash);
    }
    if (status != TPROV_OK) {
        tprov_memzero(out, out_size);
        return status;
    }
    *out_len = w.len;
    return TPROV_OK;
}

tprov_status_t tprov_build_request_body(const char *device_id, uint64_t timestamp,
                                        const char *device_key_b64, char *out, size_t out_size,
                                        size_t *out_len)
{
    return tprov_build_request_body_with(device_id, timestamp, device_key_b64, NULL, out, out_size,
                                         out_len);
}

tprov_status_t tprov_build_request_body_with(const char *device_id, uint64_t timestamp,
                                             const char *device_key_b64,
                                             const tprov_request_options_t *options, char *out,
                                             size_t out_size, size_t *out_len)
{
    tprov_hmac_key_t storage;
    tprov_key_t key;
    tprov_status_t status;

    if (out == NULL || out_len == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    *out_len = 0;
    if (out_size == 0) {
        return TPROV_ERR_BUFFER_TOO_SMALL;
    }
    out[0] = '\0';
    /* Before the key and the device ID, as tprov_build_request_body_with always answered. */
    if (!valid_fleet_and_version(options)) {
        return TPROV_ERR_REQUEST_OPTION;
    }
    status = key_from_b64(device_id, device_key_b64, &key, &storage);
    if (status == TPROV_OK) {
        status = tprov_build_request(device_id, timestamp, &key, options, NULL, out, out_size,
                                     out_len);
    }
    tprov_memzero(&storage, sizeof storage);
    return status;
}

static bool key_equals(const char *key, size_t key_len, const char *name)
{
    return strlen(name) == key_len && memcmp(key, name, key_len) == 0;
}

static tprov_status_t copy_value(char *field, size_t max_len, const char *value, size_t value_len)
{
    if (value_len == 0) {
        return TPROV_ERR_RESPONSE_VALUE;
    }
    if (value_len > max_len) {
        return TPROV_ERR_RESPONSE_VALUE_TOO_LONG;
    }
    memcpy(field, value, value_len);
    field[value_len] = '\0';
    return TPROV_OK;
}

typedef enum {
    CHARS_PRINTABLE,  /* visible ASCII, no space: credentials */
    CHARS_THINGER_ID, /* letters, digits, '_', '-': Thinger user names (and device IDs) */
    CHARS_HOSTNAME,   /* letters, digits, '.', '-' (a port is checked apart) */
    CHARS_BASE64,     /* the standard base64 alphabet and '=' */
    CHARS_ERROR_CODE  /* lower-case letters, digits, '_' */
} charset_t;

static bool value_in_charset(const char *value, size_t value_len, charset_t charset)
{
    size_t i;

    for (i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        bool ok;

        switch (charset) {
        case CHARS_PRINTABLE: ok = c > 0x20u && c < 0x7Fu; break;
        case CHARS_THINGER_ID: ok = is_device_id_char(c); break;
        case CHARS_HOSTNAME: ok = is_alnum(c) || c == '.' || c == '-'; break;
        case CHARS_BASE64: ok = is_base64_char(c) || c == '='; break;
        case CHARS_ERROR_CODE: /* fall through */
        default: ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '_'; break;
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static tprov_status_t copy_text(char *field, size_t max_len, const char *value, size_t value_len,
                                charset_t charset)
{
    tprov_status_t status = copy_value(field, max_len, value, value_len);

    if (status == TPROV_OK && !value_in_charset(value, value_len, charset)) {
        status = TPROV_ERR_RESPONSE_VALUE;
    }
    return status;
}

/* The service's rule for a host, ^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$, with a port of 1 to 65535. */
static tprov_status_t copy_host(char *field, const char *value, size_t value_len)
{
    const char *colon = (const char *)memchr(value, ':', value_len);
    size_t name_len = colon == NULL ? value_len : (size_t)(colon - value);
    tprov_status_t status = copy_value(field, TPROV_HOST_MAX_LEN, value, value_len);

    if (status != TPROV_OK) {
        return status;
    }
    if (name_len == 0 || name_len > 253u || !value_in_charset(value, name_len, CHARS_HOSTNAME)) {
        return TPROV_ERR_RESPONSE_VALUE;
    }
    if (colon != NULL) {
        size_t port_len = value_len - name_len - 1u;
        uint32_t port = 0;
        size_t i;

        if (port_len == 0 || port_len > 5u) {
            return TPROV_ERR_RESPONSE_VALUE;
        }
        for (i = 0; i < port_len; i++) {
            unsigned char c = (unsigned char)colon[1 + i];
            if (!is_digit(c)) {
                return TPROV_ERR_RESPONSE_VALUE;
            }
            port = port * 10u + (uint32_t)(c - '0');
        }
        if (port == 0 || port > PORT_MAX) {
            return TPROV_ERR_RESPONSE_VALUE;
        }
    }
    return TPROV_OK;
}

static tprov_status_t parse_decimal(const char *value, size_t value_len, uint64_t max,
                                    uint64_t *out)
{
    uint64_t result = 0;
    size_t i;

    if (value_len == 0) {
        return TPROV_ERR_RESPONSE_VALUE;
    }
    for (i = 0; i < value_len; i++) {
        unsigned char c = (unsigned char)value[i];
        uint64_t digit;

        if (!is_digit(c)) {
            return TPROV_ERR_RESPONSE_VALUE;
        }
        digit = (uint64_t)(c - '0');
        if (result > (max - digit) / 10u) {
            return TPROV_ERR_RESPONSE_VALUE;
        }
        result = result * 10u + digit;
    }
    *out = result;
    return TPROV_OK;
}

/* What parsing a body collects besides *out: the keys seen, and where the sealed value is. */
typedef struct {
    unsigned seen;
    const char *sealed;
    size_t sealed_len;
    const char *signature; /* answer_signature, checked once the whole body is read */
    size_t signature_len;
} parse_state_t;

static tprov_status_t parse_field(const char *key, size_t key_len, const char *value,
                                  size_t value_len, parse_state_t *state, tprov_response_t *out)
{
    unsigned bit;
    tprov_status_t status;
    uint64_t number = 0;

    if (key_equals(key, key_len, "username")) {
        bit = SEEN_USERNAME;
    } else if (key_equals(key, key_len, "device")) {
        bit = SEEN_DEVICE;
    } else if (key_equals(key, key_len, "credential")) {
        bit = SEEN_CREDENTIAL;
    } else if (key_equals(key, key_len, "host")) {
        bit = SEEN_HOST;
    } else if (key_equals(key, key_len, "created")) {
        bit = SEEN_CREATED;
    } else if (key_equals(key, key_len, "error")) {
        bit = SEEN_ERROR;
    } else if (key_equals(key, key_len, "retry_after")) {
        bit = SEEN_RETRY_AFTER;
    } else if (key_equals(key, key_len, "server_time")) {
        bit = SEEN_SERVER_TIME;
    } else if (key_equals(key, key_len, "sealed")) {
        bit = SEEN_SEALED;
    } else if (key_equals(key, key_len, "answer_signature")) {
        bit = SEEN_ANSWER_SIGNATURE;
    } else {
        return TPROV_OK; /* unknown keys belong to later protocol versions */
    }
    if ((state->seen & bit) != 0u) {
        return TPROV_ERR_RESPONSE_DUPLICATE;
    }
    state->seen |= bit;

    switch (bit) {
    case SEEN_ANSWER_SIGNATURE:
        /* Read only with pinned answer keys, where anything but a valid signature fails. */
        state->signature = value;
        state->signature_len = value_len;
        return TPROV_OK;
    case SEEN_USERNAME:
        return copy_text(out->username, TPROV_USERNAME_MAX_LEN, value, value_len, CHARS_THINGER_ID);
    case SEEN_DEVICE:
        status = copy_value(out->device, TPROV_DEVICE_ID_MAX_LEN, value, value_len);
        if (status == TPROV_OK && tprov_validate_device_id(out->device) != TPROV_OK) {
            status = TPROV_ERR_RESPONSE_VALUE;
        }
        return status;
    case SEEN_CREDENTIAL:
        return copy_text(out->credential, TPROV_CREDENTIAL_MAX_LEN, value, value_len,
                         CHARS_PRINTABLE);
    case SEEN_HOST:
        return copy_host(out->host, value, value_len);
    case SEEN_SEALED:
        if (value_len == 0 || !value_in_charset(value, value_len, CHARS_BASE64)) {
            return TPROV_ERR_RESPONSE_VALUE;
        }
        if (value_len > TPROV_SEALED_B64_MAX_LEN) {
            return TPROV_ERR_RESPONSE_VALUE_TOO_LONG;
        }
        state->sealed = value; /* opened once the whole body is read: it binds the other fields */
        state->sealed_len = value_len;
        return TPROV_OK;
    case SEEN_CREATED:
        if (key_equals(value, value_len, "true")) {
            out->created = true;
        } else if (key_equals(value, value_len, "false")) {
            out->created = false;
        } else {
            return TPROV_ERR_RESPONSE_VALUE;
        }
        return TPROV_OK;
    case SEEN_ERROR:
        return copy_text(out->error, TPROV_ERROR_CODE_MAX_LEN, value, value_len,
                         CHARS_ERROR_CODE);
    case SEEN_RETRY_AFTER:
        status = parse_decimal(value, value_len, UINT32_MAX, &number);
        out->retry_after_secs = (uint32_t)number;
        out->has_retry_after = status == TPROV_OK;
        return status;
    default: /* SEEN_SERVER_TIME */
        status = parse_decimal(value, value_len, TPROV_SERVER_TIME_MAX, &number);
        out->server_time = number;
        out->has_server_time = status == TPROV_OK;
        return status;
    }
}

static tprov_status_t parse_line(const char *line, size_t line_len, parse_state_t *state,
                                 tprov_response_t *out)
{
    const char *equals;
    size_t key_len;
    size_t i;

    /* CRLF is accepted: proxies and hand-written test servers send it, and no valid value can
     * end in CR, since control bytes are refused below. */
    if (line_len > 0 && line[line_len - 1u] == '\r') {
        line_len--;
    }
    for (i = 0; i < line_len; i++) {
        if (is_control((unsigned char)line[i])) {
            return TPROV_ERR_RESPONSE_SYNTAX;
        }
    }
    equals = (const char *)memchr(line, '=', line_len);
    if (equals == NULL || equals == line) {
        return TPROV_ERR_RESPONSE_SYNTAX;
    }
    key_len = (size_t)(equals - line);
    for (i = 0; i < key_len; i++) {
        if (!is_key_char((unsigned char)line[i])) {
            return TPROV_ERR_RESPONSE_SYNTAX;
        }
    }
    return parse_field(line, key_len, equals + 1, line_len - key_len - 1u, state, out);
}

/* How a sealed answer is opened: with a seal key the caller derived, or with the key itself. */
typedef struct {
    const unsigned char *seal_key;
    const tprov_key_t *key;
    uint64_t timestamp;
    bool answer_signed; /* the answer verified under a pinned answer key: modes 2 and 3 may open */
} opener_t;

/* Pinned answer keys and the request they must bind the answer to. */
typedef struct {
    const tprov_answer_keys_t *keys;
    const unsigned char *request_hash;
} answer_check_t;

static tprov_status_t check_answer_signature(const answer_check_t *check,
                                             const parse_state_t *state, const char *field,
                                             const char *value, size_t value_len,
                                             const tprov_response_t *r);

static tprov_status_t open_sealed(const char *sealed_b64, size_t sealed_len, const opener_t *opener,
                                  const char *username, const char *device, const char *host,
                                  char *out, size_t out_size);

static tprov_status_t parse_body(const char *body, size_t len, const char *expected_device,
                                 const opener_t *opener, const answer_check_t *check,
                                 tprov_response_t *out)
{
    parse_state_t state = { 0u, NULL, 0u, NULL, 0u };
    opener_t signed_opener;
    size_t pos = 0;
    tprov_status_t status;

    if (len == 0) {
        return TPROV_ERR_RESPONSE_EMPTY;
    }
    if (len > TPROV_RESPONSE_MAX_LEN) {
        return TPROV_ERR_RESPONSE_TOO_LARGE;
    }
    if (body[len - 1u] != '\n') {
        return TPROV_ERR_RESPONSE_TRUNCATED;
    }
    while (pos < len) {
        const char *line = body + pos;
        /* Never NULL: the body ends in '\n'. */
        const char *newline = (const char *)memchr(line, '\n', len - pos);
        size_t line_len = (size_t)(newline - line);

        status = parse_line(line, line_len, &state, out);
        if (status != TPROV_OK) {
            return status;
        }
        pos += line_len + 1u;
    }

    if ((state.seen & SEEN_ERROR) != 0u) {
        out->kind = TPROV_RESPONSE_ERROR;
        /* An error carries no usable credentials, whatever else it holds. */
        tprov_memzero(out->username, sizeof out->username);
        tprov_memzero(out->device, sizeof out->device);
        tprov_memzero(out->credential, sizeof out->credential);
        tprov_memzero(out->host, sizeof out->host);
        out->created = false;
        return TPROV_OK;
    }
    if ((state.seen & SEEN_ALL_SUCCESS) != SEEN_ALL_SUCCESS) {
        return TPROV_ERR_RESPONSE_MISSING;
    }
    if (opener != NULL && (state.seen & SEEN_CREDENTIAL) != 0u) {
        return TPROV_ERR_RESPONSE_NOT_SEALED;
    }
    if ((state.seen & (opener != NULL ? SEEN_SEALED : SEEN_CREDENTIAL)) == 0u) {
        return TPROV_ERR_RESPONSE_MISSING;
    }
    if (expected_device != NULL && strcmp(out->device, expected_device) != 0) {
        return TPROV_ERR_RESPONSE_DEVICE_MISMATCH;
    }
    if (check != NULL) {
        status = opener != NULL
                     ? check_answer_signature(check, &state, "sealed", state.sealed,
                                              state.sealed_len, out)
                     : check_answer_signature(check, &state, "credential", out->credential,
                                              strlen(out->credential), out);
        if (status != TPROV_OK) {
            return status;
        }
        if (opener != NULL) {
            signed_opener = *opener;
            signed_opener.answer_signed = true;
            opener = &signed_opener;
        }
    }
    if (opener != NULL) {
        /* The device was validated with its line, the key by the public entry point. */
        status = open_sealed(state.sealed, state.sealed_len, opener, out->username, out->device,
                             out->host, out->credential, sizeof out->credential);
        if (status != TPROV_OK) {
            return status;
        }
    }
    out->kind = TPROV_RESPONSE_SUCCESS;
    out->has_retry_after = false;
    out->has_server_time = false;
    return TPROV_OK;
}

static tprov_status_t parse_response(const char *body, size_t len, const char *expected_device,
                                     const opener_t *opener, const answer_check_t *check,
                                     tprov_response_t *out)
{
    tprov_status_t status;

    if (out == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    tprov_memzero(out, sizeof *out);
    if (body == NULL && len != 0) {
        return TPROV_ERR_ARGUMENT;
    }
    status = parse_body(body, len, expected_device, opener, check, out);
    if (status != TPROV_OK) {
        tprov_memzero(out, sizeof *out);
    }
    return status;
}

tprov_status_t tprov_parse_response(const char *body, size_t len, const char *expected_device,
                                    tprov_response_t *out)
{
    return parse_response(body, len, expected_device, NULL, NULL, out);
}

tprov_status_t tprov_parse_sealed_response(const char *body, size_t len,
                                           const char *expected_device,
                                           const unsigned char seal_key[TPROV_SEAL_KEY_LEN],
                                           tprov_response_t *out)
{
    opener_t opener = { NULL, NULL, 0u, false };

    if (seal_key == NULL) {
        if (out != NULL) {
            tprov_memzero(out, sizeof *out);
        }
        return TPROV_ERR_ARGUMENT;
    }
    opener.seal_key = seal_key;
    return parse_response(body, len, expected_device, &opener, NULL, out);
}

tprov_status_t tprov_parse_response_with_key(const char *body, size_t len,
                                             const char *expected_device, uint64_t timestamp,
                                             const tprov_key_t *key, tprov_response_t *out)
{
    opener_t opener = { NULL, NULL, 0u, false };

    if (key == NULL || !valid_key(key)) {
        if (out != NULL) {
            tprov_memzero(out, sizeof *out);
        }
        return TPROV_ERR_ARGUMENT;
    }
    opener.key = key;
    opener.timestamp = timestamp;
    return parse_response(body, len, expected_device, &opener, NULL, out);
}

tprov_status_t tprov_parse_answer(const char *body, size_t len, const char *expected_device,
                                  uint64_t timestamp, const tprov_key_t *key,
                                  const tprov_answer_keys_t *answer_keys,
                                  const unsigned char request_hash[TPROV_REQUEST_HASH_LEN],
                                  tprov_response_t *out)
{
    opener_t opener = { NULL, NULL, 0u, false };
    answer_check_t check = { NULL, NULL };
    bool pinned = answer_keys != NULL && answer_keys->count > 0u;
    size_t i;

    if (out != NULL) {
        tprov_memzero(out, sizeof *out);
    }
    if ((key != NULL && !valid_key(key)) ||
        (pinned && (answer_keys->count > TPROV_ANSWER_KEYS_MAX || request_hash == NULL))) {
        return TPROV_ERR_ARGUMENT;
    }
    for (i = 0; pinned && i < answer_keys->count; i++) {
        if (answer_keys->keys[i] == NULL) {
            return TPROV_ERR_ARGUMENT;
        }
    }
    check.keys = answer_keys;
    check.request_hash = request_hash;
    opener.key = key;
    opener.timestamp = timestamp;
    return parse_response(body, len, expected_device, key != NULL ? &opener : NULL,
                          pinned ? &check : NULL, out);
}

/* ---- Answer signatures ---- */

static int p256_verify(void *ctx, const unsigned char public_key[TPROV_P256_POINT_LEN],
                       const unsigned char digest[32],
                       const unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r;
    mbedtls_mpi s;
    int rc;

    (void)ctx;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (rc == 0) {
        rc = mbedtls_ecp_point_read_binary(&grp, &q, public_key, TPROV_P256_POINT_LEN);
    }
    if (rc == 0) {
        rc = mbedtls_ecp_check_pubkey(&grp, &q);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_read_binary(&r, signature, TPROV_P256_SCALAR_LEN);
    }
    if (rc == 0) {
        rc = mbedtls_mpi_read_binary(&s, signature + TPROV_P256_SCALAR_LEN, TPROV_P256_SCALAR_LEN);
    }
    if (rc == 0) {
        /* Refuses r or s outside [1, n-1]. */
        rc = mbedtls_ecdsa_verify(&grp, digest, SHA256_LEN, &q, &r, &s);
    }
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc;
}

tprov_status_t tprov_answer_key_from_base64(const char *b64,
                                            unsigned char point[TPROV_P256_POINT_LEN])
{
    unsigned char decoded[TPROV_P256_POINT_LEN + DECODE_SLACK];
    size_t decoded_len = 0;
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    size_t i;
    int rc;

    if (b64 == NULL || point == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    memset(point, 0, TPROV_P256_POINT_LEN);
    for (i = 0; i < TPROV_ANSWER_KEY_B64_LEN; i++) {
        if (!is_base64_char((unsigned char)b64[i]) && b64[i] != '=') {
            return TPROV_ERR_KEY;
        }
    }
    if (b64[TPROV_ANSWER_KEY_B64_LEN] != '\0' ||
        mbedtls_base64_decode(decoded, sizeof decoded, &decoded_len, (const unsigned char *)b64,
                              TPROV_ANSWER_KEY_B64_LEN) != 0 ||
        decoded_len != TPROV_P256_POINT_LEN || decoded[0] != 0x04u) {
        return TPROV_ERR_KEY;
    }
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    rc = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1);
    if (rc == 0) {
        rc = mbedtls_ecp_point_read_binary(&grp, &q, decoded, TPROV_P256_POINT_LEN) != 0 ||
                     mbedtls_ecp_check_pubkey(&grp, &q) != 0
                 ? 1
                 : 0;
        if (rc == 0) {
            memcpy(point, decoded, TPROV_P256_POINT_LEN);
        }
    } else {
        rc = -1;
    }
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return rc == 0 ? TPROV_OK : rc > 0 ? TPROV_ERR_KEY : TPROV_ERR_CRYPTO;
}

tprov_status_t tprov_hash_request(const char *body, size_t len,
                                  unsigned char hash[TPROV_REQUEST_HASH_LEN])
{
    if ((body == NULL && len != 0) || hash == NULL) {
        return TPROV_ERR_ARGUMENT;
    }
    return sha256((const unsigned char *)body, len, hash);
}

/* SHA-256 of the answer's signed message: ANSWER_LABEL, the request hash in lowercase hex, then
 * username, device, host, the field's name and value and created, "\n" between them. */
static tprov_status_t answer_digest(const unsigned char request_hash[TPROV_REQUEST_HASH_LEN],
                                    const tprov_response_t *r, const char *field,
                                    const char *value, size_t value_len,
                                    unsigned char digest[SHA256_LEN])
{
    static const char HEX[] = "0123456789abcdef";
    char hash_hex[2 * TPROV_REQUEST_HASH_LEN + 1];
    const char *parts[7];
    size_t part_lens[7];
    mbedtls_sha256_context ctx;
    size_t i;
    int rc;

    for (i = 0; i < TPROV_REQUEST_HASH_LEN; i++) {
        hash_hex[2 * i] = HEX[request_hash[i] >> 4];
        hash_hex[2 * i + 1] = HEX[request_hash[i] & 0x0Fu];
    }
    hash_hex[2 * TPROV_REQUEST_HASH_LEN] = '\n';
    parts[0] = hash_hex;
    part_lens[0] = sizeof hash_hex;
    parts[1] = r->username;
    parts[2] = r->device;
    parts[3] = r->host;
    parts[4] = field;
    for (i = 1; i < 5; i++) {
        part_lens[i] = strlen(parts[i]);
    }
    parts[5] = value;
    part_lens[5] = value_len;
    parts[6] = r->created ? "true" : "false";
    part_lens[6] = strlen(parts[6]);

    mbedtls_sha256_init(&ctx);
    rc = SHA256_STARTS(&ctx);
    if (rc == 0) {
        rc = SHA256_UPDATE(&ctx, (const unsigned char *)ANSWER_LABEL, sizeof ANSWER_LABEL - 1u);
    }
    for (i = 0; rc == 0 && i < 7; i++) {
        rc = SHA256_UPDATE(&ctx, (const unsigned char *)parts[i], part_lens[i]);
        /* hash_hex carries its own "\n"; created is the last line, with none after it. */
        if (rc == 0 && i > 0 && i < 6) {
            rc = SHA256_UPDATE(&ctx, (const unsigned char *)"\n", 1);
        }
    }
    if (rc == 0) {
        rc = SHA256_FINISH(&ctx, digest);
    }
    mbedtls_sha256_free(&ctx);
    return rc == 0 ? TPROV_OK : TPROV_ERR_CRYPTO;
}

/* The answer's signature must verify under one of the pinned keys; value is what the answer
 * carries in field ("credential" or "sealed"), as it came. */
static tprov_status_t check_answer_signature(const answer_check_t *check,
                                             const parse_state_t *state, const char *field,
                                             const char *value, size_t value_len,
                                             const tprov_response_t *r)
{
    unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN + DECODE_SLACK];
    unsigned char digest[SHA256_LEN];
    size_t signature_len = 0;
    tprov_verify_fn verify = check->keys->verify != NULL ? check->keys->verify : p256_verify;
    tprov_status_t status;
    size_t i;

    if (state->signature == NULL || state->signature_len != TPROV_ANSWER_SIGNATURE_B64_LEN ||
        !value_in_charset(state->signature, state->signature_len, CHARS_BASE64) ||
        mbedtls_base64_decode(signature, sizeof signature, &signature_len,
                              (const unsigned char *)state->signature, state->signature_len) != 0 ||
        signature_len != TPROV_ECDSA_P256_SIGNATURE_LEN) {
        return TPROV_ERR_ANSWER_SIGNATURE;
    }
    status = answer_digest(check->request_hash, r, field, value, value_len, digest);
    if (status != TPROV_OK) {
        return status;
    }
    for (i = 0; i < check->keys->count; i++) {
        if (verify(check->keys->verify_ctx, check->keys->keys[i], digest, signature) == 0) {
            return TPROV_OK;
        }
    }
    return TPROV_ERR_ANSWER_SIGNATURE;
}

/* Decodes a sealed value into envelope (TPROV_SEALED_MAX_LEN + DECODE_SLACK bytes) and checks
 * its frame: format, a known mode and room for its header, a nonce, 1 byte and a tag. Writes the
 * mode's header length to *header_len. */
static tprov_status_t decode_envelope(const char *sealed_b64, size_t sealed_len,
                                      unsigned char *envelope, size_t envelope_size,
                                      size_t *envelope_len, size_t *header_len)
{
    if (sealed_len > TPROV_SEALED_B64_MAX_LEN ||
        mbedtls_base64_decode(envelope, envelope_size, envelope_len,
                              (const unsigned char *)sealed_b64, sealed_len) != 0 ||
        *envelope_len < SEAL_HEADER_LEN || *envelope_len > TPROV_SEALED_MAX_LEN ||
        envelope[0] != TPROV_SEAL_FORMAT) {
        return TPROV_ERR_SEALED;
    }
    if (envelope[1] == TPROV_SEAL_MODE_HMAC || envelope[1] == SEAL_MODE_CLAIM) {
        *header_len = SEAL_HEADER_LEN;
    } else if (envelope[1] == TPROV_SEAL_MODE_ECDH) {
        *header_len = SEAL_HEADER_LEN + TPROV_P256_POINT_LEN;
    } else {
        return TPROV_ERR_SEALED;
    }
    if (*envelope_len < *header_len + SEAL_NONCE_LEN + 1u + SEAL_TAG_LEN) {
        return TPROV_ERR_SEALED;
    }
    return TPROV_OK;
}

/* Appends s to the associated data; false when it would not fit (caller strings are unchecked). */
static bool append_aad(unsigned char *aad, size_t *aad_len, const char *s, size_t max_len)
{
    size_t len = strlen(s);

    if (len > max_len) {
        return false;
    }
    memcpy(aad + *aad_len, s, len);
    *aad_len += len;
    return true;
}

/* AES-256-GCM open of a decoded envelope whose header is header_len bytes. */
static tprov_status_t open_envelope(const unsigned char *envelope, size_t envelope_len,
                                    size_t header_len, const unsigned char key[TPROV_SEAL_KEY_LEN],
                                    const char *username, const char *device, const char *host,
                                    char *out, size_t out_size)
{
    unsigned char aad[SEAL_AAD_MAX_LEN];
    size_t aad_len = header_len;
    size_t text_len = envelope_len - header_len - SEAL_NONCE_LEN - SEAL_TAG_LEN;
    size_t i;
    mbedtls_gcm_context gcm;
    tprov_status_t status = TPROV_OK;
    int rc;

    if (text_len >= out_size) {
        return TPROV_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(aad, envelope, header_len);
    if (!append_aad(aad, &aad_len, username, TPROV_USERNAME_MAX_LEN) ||
        !append_aad(aad, &aad_len, "\n", 1) ||
        !append_aad(aad, &aad_len, device, TPROV_DEVICE_ID_MAX_LEN) ||
        !append_aad(aad, &aad_len, "\n", 1) ||
        !append_aad(aad, &aad_len, host, TPROV_HOST_MAX_LEN)) {
        return TPROV_ERR_ARGUMENT;
    }

    mbedtls_gcm_init(&gcm);
    rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, TPROV_SEAL_KEY_LEN * 8u);
    if (rc == 0) {
        rc = mbedtls_gcm_auth_decrypt(&gcm, text_len, envelope + header_len, SEAL_NONCE_LEN, aad,
                                      aad_len, envelope + envelope_len - SEAL_TAG_LEN,
                                      SEAL_TAG_LEN, envelope + header_len + SEAL_NONCE_LEN,
                                      (unsigned char *)out);
        if (rc == MBEDTLS_ERR_GCM_AUTH_FAILED) {
            status = TPROV_ERR_SEALED;
        }
    }
    if (rc != 0 && status == TPROV_OK) {
        status = TPROV_ERR_CRYPTO;
    }
    mbedtls_gcm_free(&gcm);
    /* Authentic, yet checked: a credential is visible ASCII, as in a v1 answer. */
    for (i = 0; status == TPROV_OK && i < text_len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c <= 0x20u || c >= 0x7Fu) {
            status = TPROV_ERR_SEALED;
        }
    }
    if (status == TPROV_OK) {
        out[text_len] = '\0';
    }
    return status;
}

/* The seal key of an ECDH envelope: HMAC-SHA256(Z, SEAL_LABEL_ECDH device "\n" timestamp), Z the
 * x-coordinate the key's ecdh callback agrees with the service's ephemeral point. */
static tprov_status_t ecdh_seal_key(const tprov_key_t *key,
                                    const unsigned char peer[TPROV_P256_POINT_LEN],
                                    const char *device, uint64_t timestamp,
                                    unsigned char seal_key[TPROV_SEAL_KEY_LEN])
{
    unsigned char shared_x[TPROV_P256_SCALAR_LEN];
    char message[SIGNED_MESSAGE_MAX_LEN];
    size_t message_len = device_message(SEAL_LABEL_ECDH, device, timestamp, message);
    tprov_status_t status = TPROV_OK;

    if (key->ecdh(key->ctx, peer, shared_x) != 0) {
        status = TPROV_ERR_KEY_CALLBACK;
    } else {
        status = hmac_sha256(shared_x, sizeof shared_x, (const unsigned char *)message,
                             message_len, seal_key);
    }
    tprov_memzero(shared_x, sizeof shared_x);
    return status;
}

/* The seal key of a decoded envelope: the opener's own (hmac mode only: ECDH derives its key
 * from the envelope), or the one its key derives for the envelope's mode. Each key opens its own
 * mode only: an envelope of another mode is not for this device. */
static tprov_status_t envelope_seal_key(const opener_t *opener, const unsigned char *envelope,
                                        const char *device, unsigned char seal_key[TPROV_SEAL_KEY_LEN])
{
    const tprov_key_t *key = opener->key;

    if (key == NULL) {
        if (envelope[1] != TPROV_SEAL_MODE_HMAC) {
            return TPROV_ERR_SEALED;
        }
        memcpy(seal_key, opener->seal_key, TPROV_SEAL_KEY_LEN);
        return TPROV_OK;
    }
    if (envelope[1] == TPROV_SEAL_MODE_HMAC && key->type == TPROV_KEY_HMAC) {
        return key_mac(key, SEAL_LABEL, device, opener->timestamp, seal_key);
    }
    /* Only an uncompressed point opens (0x04); the callback checks it is on the curve. */
    if (envelope[1] == TPROV_SEAL_MODE_ECDH && key->type == TPROV_KEY_P256 && key->ecdh != NULL &&
        envelope[SEAL_HEADER_LEN] == 0x04u) {
        return ecdh_seal_key(key, envelope + SEAL_HEADER_LEN, device, opener->timestamp, seal_key);
    }
    return TPROV_ERR_SEALED;
}

/* Decodes, picks the seal key and opens; on failure out is wiped (but for a bad argument or a
 * small buffer, which say nothing about the envelope). Arguments were checked by the caller. */
static tprov_status_t open_sealed(const char *sealed_b64, size_t sealed_len, const opener_t *opener,
                                  const char *username, const char *device, const char *host,
                                  char *out, size_t out_size)
{
    unsigned char envelope[TPROV_SEALED_MAX_LEN + DECODE_SLACK];
    unsigned char seal_key[TPROV_SEAL_KEY_LEN];
    size_t envelope_len = 0;
    size_t header_len = 0;
    tprov_status_t status;

    out[0] = '\0';
    status = decode_envelope(sealed_b64, sealed_len, envelope, sizeof envelope, &envelope_len,
                             &header_len);
    /* A claim or ECDH envelope is made from what a party in the middle sees (the claim secret in
     * the request, the public key in the certificate): only a signed answer may be opened. */
    if (status == TPROV_OK && envelope[1] != TPROV_SEAL_MODE_HMAC && !opener->answer_signed) {
        status = TPROV_ERR_ANSWER_KEY_REQUIRED;
    }
    if (status == TPROV_OK) {
        status = envelope_seal_key(opener, envelope, device, seal_key);
    }
    if (status == TPROV_OK) {
        status = open_envelope(envelope, envelope_len, header_len, seal_key, username, device, host,
                               out, out_size);
    }
    if (status != TPROV_OK && status != TPROV_ERR_ARGUMENT && status != TPROV_ERR_BUFFER_TOO_SMALL) {
        tprov_memzero(out, out_size);
    }
    tprov_memzero(seal_key, sizeof seal_key);
    tprov_memzero(envelope, sizeof envelope);
    return status;
}

tprov_status_t tprov_open_sealed(const char *sealed_b64, size_t sealed_len,
                                 const unsigned char key[TPROV_SEAL_KEY_LEN], const char *username,
                                 const char *device, const char *host, char *out,
                                 size_t out_size)
{
    opener_t opener = { NULL, NULL, 0u, false };

    if (sealed_b64 == NULL || key == NULL || username == NULL || device == NULL || host == NULL ||
        out == NULL || out_size == 0) {
        return TPROV_ERR_ARGUMENT;
    }
    opener.seal_key = key;
    return open_sealed(sealed_b64, sealed_len, &opener, username, device, host, out, out_size);
}

tprov_status_t tprov_open_sealed_with_key(const char *sealed_b64, size_t sealed_len,
                                          const tprov_key_t *key, const char *device,
                                          uint64_t timestamp, const char *username,
                                          const char *host, char *out, size_t out_size)
{
    opener_t opener = { NULL, NULL, 0u, false };
    tprov_status_t status;

    if (sealed_b64 == NULL || key == NULL || !valid_key(key) || username == NULL ||
        device == NULL || host == NULL || out == NULL || out_size == 0) {
        return TPROV_ERR_ARGUMENT;
    }
    out[0] = '\0';
    /* The device ID goes into the seal key's message: it must have the protocol's length. */
    status = tprov_validate_device_id(device);
    if (status != TPROV_OK) {
        return status;
    }
    opener.key = key;
    opener.timestamp = timestamp;
    return open_sealed(sealed_b64, sealed_len, &opener, username, device, host, out, out_size);
}

int64_t tprov_clock_offset(uint64_t server_time, uint64_t now)
{
    uint64_t difference;

    if (server_time >= now) {
        difference = server_time - now;
        return difference > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)difference;
    }
    difference = now - server_time;
    return difference > (uint64_t)INT64_MAX ? -INT64_MAX : -(int64_t)difference;
}

uint64_t tprov_apply_clock_offset(uint64_t now, int64_t offset_secs)
{
    uint64_t magnitude;

    if (offset_secs >= 0) {
        magnitude = (uint64_t)offset_secs;
        return now > UINT64_MAX - magnitude ? UINT64_MAX : now + magnitude;
    }
    /* -(offset + 1) + 1 is |offset| without negating INT64_MIN. */
    magnitude = (uint64_t)(-(offset_secs + 1)) + 1u;
    return now < magnitude ? 0u : now - magnitude;
}

static bool is_transient_status(long http_status)
{
    return http_status == 0 || http_status == 408 || http_status == 429 ||
           http_status == 500 || http_status == 502 || http_status == 503 ||
           http_status == 504;
}

tprov_next_t tprov_next_step(long http_status, tprov_status_t parse_status,
                             const tprov_response_t *response)
{
    bool is_2xx = http_status >= 200 && http_status <= 299;

    if (parse_status != TPROV_OK || response == NULL) {
        /* No protocol answer: a gateway, a proxy or the network spoke. Only their transient
         * statuses are worth another try; a 2xx we cannot read must not rotate the credential
         * again and again. */
        return is_transient_status(http_status) ? TPROV_NEXT_RETRY_LATER : TPROV_NEXT_GIVE_UP;
    }
    if (response->kind == TPROV_RESPONSE_SUCCESS) {
        return http_status == 200 || http_status == 201 ? TPROV_NEXT_STORE_CREDENTIALS
                                                        : TPROV_NEXT_GIVE_UP;
    }
    if (response->kind != TPROV_RESPONSE_ERROR || is_2xx) {
        return TPROV_NEXT_GIVE_UP;
    }
    if (strcmp(response->error, "clock_skew") == 0) {
        return response->has_server_time ? TPROV_NEXT_RETRY_WITH_SERVER_TIME : TPROV_NEXT_GIVE_UP;
    }
    /* replayed: this clock is behind the last accepted request's; the service's time is newer. */
    if (strcmp(response->error, "replayed") == 0 && response->has_server_time) {
        return TPROV_NEXT_RETRY_WITH_SERVER_TIME;
    }
    /* The service marks what is retryable with retry_after; 429 and 503 are retryable by
     * definition, with or without it. Every other protocol error is final. */
    if (response->has_retry_after || http_status == 429 || http_status == 503) {
        return TPROV_NEXT_RETRY_LATER;
    }
    return TPROV_NEXT_GIVE_UP;
}

uint32_t tprov_retry_delay_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms,
                              bool has_retry_after, uint32_t retry_after_secs,
                              uint32_t random_value)
{
    uint64_t ceiling_ms = base_ms;
    uint64_t delay_ms;
    uint32_t i;

    for (i = 1; i < attempt && ceiling_ms != 0u && ceiling_ms < cap_ms; i++) {
        ceiling_ms <<= 1;
    }
    if (ceiling_ms > cap_ms) {
        ceiling_ms = cap_ms;
    }
    delay_ms = (uint64_t)random_value % (ceiling_ms + 1u);
    if (has_retry_after) {
        uint32_t secs = retry_after_secs < TPROV_RETRY_AFTER_MAX_SECS ? retry_after_secs
                                                                      : TPROV_RETRY_AFTER_MAX_SECS;
        delay_ms += (uint64_t)secs * 1000u;
    }
    return delay_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)delay_ms;
}
