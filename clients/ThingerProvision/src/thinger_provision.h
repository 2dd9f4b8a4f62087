/*
 * thinger_provision: the device side of the thinger-provisioner protocol, versions 1 and 2
 * (version 2: the answer's credential is sealed to the device key, docs/protocol.md).
 *
 * Portable C99 with no I/O and no allocation: every buffer is the caller's, every failure is a
 * tprov_status_t. Crypto comes from mbedTLS (HMAC-SHA256, AES-256-GCM and base64), with calls
 * that exist in both mbedTLS 2.28 and 3.x; mbedtls_md_hmac() itself borrows its SHA-256 context
 * and HMAC pads (about 240 bytes), and mbedtls_gcm_setkey() its AES context (about 280 bytes),
 * from the mbedTLS allocator for the length of the call. The transport
 * (HTTP over TLS) is the caller's: see docs/firmware.md for the protocol and
 * clients/c/provision.c for a complete client.
 *
 * A provisioning round, in the caller (sealed, protocol v2):
 *   1. timestamp = tprov_apply_clock_offset(now, clock_offset)
 *      tprov_build_request_body_with(device, timestamp, device_key_b64, &{.sealed = true}, body, ...)
 *      tprov_derive_seal_key(device, timestamp, device_key_b64, seal_key)
 *   2. POST body to TPROV_PATH with Content-Type TPROV_CONTENT_TYPE and Accept TPROV_ACCEPT
 *   3. tprov_parse_sealed_response(response_body, length, device, seal_key, &response)
 *   4. tprov_next_step(http_status, parse_status, &response) says what to do next; on
 *      clock_skew, clock_offset = tprov_clock_offset(response.server_time, now).
 * Protocol v1 devices build without .sealed and parse with tprov_parse_response().
 *
 * Keys the core never reads (docs/firmware.md): a tprov_key_t hands the core callbacks that
 * sign, MAC or agree a key wherever the key lives: an ATECC608-class secure element, the ESP32's
 * HMAC peripheral with the device key burned into an eFuse block, its Digital Signature
 * peripheral, a TPM. tprov_key_from_device_key() and tprov_key_from_p256() are the mbedTLS
 * implementations with the key in memory. With a key, a round is:
 *   1. tprov_build_request(device, timestamp, &key, &{.sealed = true, .request_hash = hash},
 *                          &certificate or NULL, body, ...)
 *   2. POST as above
 *   3. tprov_parse_answer(body, length, device, timestamp, &key, &answer_keys, hash, &response)
 *   4. tprov_next_step() as above.
 * answer_keys are the service's answer keys the firmware pins (see tprov_answer_keys_t): with them
 * only answers the service signed for this very request are accepted, in every envelope mode.
 */
#ifndef THINGER_PROVISION_H
#define THINGER_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TPROV_PROTOCOL_VERSION 2
#define TPROV_PATH "/v1/provision"
#define TPROV_CONTENT_TYPE "application/json"
#define TPROV_ACCEPT "text/plain"

/* Field bounds, in bytes, not counting the terminating NUL. */
#define TPROV_DEVICE_ID_MAX_LEN 32
#define TPROV_USERNAME_MAX_LEN 64
#define TPROV_CREDENTIAL_MAX_LEN 255
/* A host name (at most 253) and an optional ":port" (at most 6 more). */
#define TPROV_HOST_MAX_LEN 259
#define TPROV_ERROR_CODE_MAX_LEN 32

/* A device key is HMAC-SHA256 output: 32 bytes, 44 characters of base64. */
#define TPROV_DEVICE_KEY_LEN 32
#define TPROV_DEVICE_KEY_B64_LEN 44
#define TPROV_SIGNATURE_B64_LEN 44
#define TPROV_FLEET_KEY_MIN_LEN 32
#define TPROV_FLEET_KEY_MAX_LEN 256

/* Longest request body: {"device":"<32>","timestamp":<20 digits>,"signature":"<44>"}, with a
 * 32-character fleet, a 3-digit key version and ,"version":2. */
#define TPROV_REQUEST_BODY_MAX_LEN 209
/* The service reads at most 4096 bytes of request: an X.509 request (certificate, one
 * intermediate, signature) must fit, and a buffer of this size plus a NUL always holds one. */
#define TPROV_X509_REQUEST_BODY_MAX_LEN 4096
/* The longest signature a key callback may write: RSA 4096 (ECDSA P-256 is 64 bytes, r || s). */
#define TPROV_SIGNATURE_MAX_LEN 512
#define TPROV_ECDSA_P256_SIGNATURE_LEN 64
/* The largest text response a v1 server may send; anything longer is refused unparsed. */
#define TPROV_RESPONSE_MAX_LEN 1024
/* server_time values above this (9999-12-31T23:59:59Z) are refused as malformed. */
#define TPROV_SERVER_TIME_MAX 253402300799u
/* A sealed credential (protocol v2): base64 of format (1 byte), mode (1), the mode's header
 * (ECDH: the service's ephemeral P-256 public key, 65 bytes), nonce (12), the encrypted
 * credential (1 to TPROV_CREDENTIAL_MAX_LEN) and the GCM tag (16). */
#define TPROV_SEAL_KEY_LEN 32
#define TPROV_SEAL_FORMAT 1
#define TPROV_SEAL_MODE_HMAC 1 /* the key is derived from the device key (claim mode is 2) */
#define TPROV_SEAL_MODE_ECDH 3 /* the key is agreed with the X.509 certificate's P-256 key */
#define TPROV_P256_POINT_LEN 65 /* an uncompressed P-256 point: 0x04, x, y */
#define TPROV_P256_SCALAR_LEN 32
#define TPROV_SEALED_MAX_LEN (2 + TPROV_P256_POINT_LEN + 12 + TPROV_CREDENTIAL_MAX_LEN + 16)
#define TPROV_SEALED_B64_MAX_LEN (((TPROV_SEALED_MAX_LEN + 2) / 3) * 4)
/* Answer signatures (docs/firmware.md, Answer keys): the service signs every success answer with
 * its deployment's ECDSA P-256 answer key; firmware pins the public half (or two during a
 * rotation) and the SHA-256 of the request body it sent binds the answer to that request. */
#define TPROV_REQUEST_HASH_LEN 32
#define TPROV_ANSWER_KEYS_MAX 2
#define TPROV_ANSWER_KEY_B64_LEN 88       /* base64 of the 65-byte point */
#define TPROV_ANSWER_SIGNATURE_B64_LEN 88 /* base64 of r || s, 64 bytes */
/* Retry-After values above this are clamped, so no answer can park a device for days. */
#define TPROV_RETRY_AFTER_MAX_SECS 3600u

typedef enum {
    TPROV_OK = 0,
    TPROV_ERR_ARGUMENT,              /* a NULL pointer where a value is required */
    TPROV_ERR_BUFFER_TOO_SMALL,      /* the output buffer cannot hold the result and its NUL */
    TPROV_ERR_DEVICE_ID,             /* the device ID does not match ^[A-Za-z0-9_-]{1,32}$ */
    TPROV_ERR_KEY,                   /* a key is not valid base64 or has the wrong length */
    TPROV_ERR_CRYPTO,                /* mbedTLS failed: no SHA-256 in its build, or no memory */
    TPROV_ERR_RESPONSE_EMPTY,        /* the response body has no bytes */
    TPROV_ERR_RESPONSE_TOO_LARGE,    /* the body is longer than TPROV_RESPONSE_MAX_LEN */
    TPROV_ERR_RESPONSE_TRUNCATED,    /* the last line has no terminating '\n' */
    TPROV_ERR_RESPONSE_SYNTAX,       /* a line is not key=value, or holds a control byte */
    TPROV_ERR_RESPONSE_DUPLICATE,    /* a known key appears twice */
    TPROV_ERR_RESPONSE_VALUE_TOO_LONG, /* a known value is longer than its field */
    TPROV_ERR_RESPONSE_VALUE,        /* a known value is empty or malformed */
    TPROV_ERR_RESPONSE_MISSING,      /* a success response lacks a required key */
    TPROV_ERR_RESPONSE_DEVICE_MISMATCH, /* the credentials are for another device */
    TPROV_ERR_REQUEST_OPTION,        /* a fleet name or key version outside the protocol's rules */
    TPROV_ERR_SEALED,                /* the sealed credential does not open: a wrong device key,
                                        another request's answer, or changed on the way */
    TPROV_ERR_RESPONSE_NOT_SEALED,   /* a sealed request got a credential in clear: a downgrade */
    TPROV_ERR_KEY_CALLBACK,          /* a key's callback failed (a secure element or peripheral
                                        said no; the callback keeps its own error in its ctx) */
    TPROV_ERR_ANSWER_SIGNATURE,      /* answer keys are pinned and the success answer's
                                        answer_signature is missing or verifies under none of
                                        them: forged, for another request, or changed on the way */
    TPROV_ERR_ANSWER_KEY_REQUIRED    /* a claim (mode 2) or ECDH (mode 3) envelope, and no answer
                                        key pinned: anyone who saw the request, or who holds the
                                        public certificate, can make such an answer */
} tprov_status_t;

typedef enum {
    TPROV_RESPONSE_NONE = 0, /* nothing parsed: the status said why */
    TPROV_RESPONSE_SUCCESS,
    TPROV_RESPONSE_ERROR
} tprov_response_kind_t;

/* A parsed text response. Success fields are set for TPROV_RESPONSE_SUCCESS, the others for
 * TPROV_RESPONSE_ERROR; every string is NUL-terminated. It holds the credential: wipe it with
 * tprov_memzero() once stored. */
typedef struct {
    tprov_response_kind_t kind;
    char username[TPROV_USERNAME_MAX_LEN + 1];
    char device[TPROV_DEVICE_ID_MAX_LEN + 1];
    char credential[TPROV_CREDENTIAL_MAX_LEN + 1];
    char host[TPROV_HOST_MAX_LEN + 1];
    bool created; /* true: 201, new device; false: 200, existed, its credential was replaced */
    char error[TPROV_ERROR_CODE_MAX_LEN + 1];
    bool has_retry_after;
    uint32_t retry_after_secs;
    bool has_server_time;
    uint64_t server_time; /* Unix seconds, at most TPROV_SERVER_TIME_MAX, set with errors
                             "clock_skew" and (some) "replayed" */
} tprov_response_t;

/* What the caller does after one exchange. */
typedef enum {
    TPROV_NEXT_STORE_CREDENTIALS = 0, /* success: store the response fields, stop */
    TPROV_NEXT_RETRY_WITH_SERVER_TIME, /* clock_skew, or replayed with server_time: retry now, once,
                                          with server_time as now */
    TPROV_NEXT_RETRY_LATER,          /* transient: wait tprov_retry_delay_ms(), then retry */
    TPROV_NEXT_GIVE_UP               /* permanent: the same request will fail again */
} tprov_next_t;

/* Returns the enumerator's name ("TPROV_ERR_KEY"), or "TPROV_UNKNOWN". Never NULL. */
const char *tprov_status_name(tprov_status_t status);

/* Returns TPROV_OK when device_id matches ^[A-Za-z0-9_-]{1,32}$, else TPROV_ERR_DEVICE_ID
 * (TPROV_ERR_ARGUMENT for NULL). */
tprov_status_t tprov_validate_device_id(const char *device_id);

/* Factory and test helper, never needed on a device: writes base64(HMAC-SHA256(fleet key,
 * device_id)) and a NUL to out (out_size >= TPROV_DEVICE_KEY_B64_LEN + 1). The fleet key is
 * base64 of 32 to 256 bytes. Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_DEVICE_ID, TPROV_ERR_KEY,
 * TPROV_ERR_BUFFER_TOO_SMALL, TPROV_ERR_CRYPTO. */
tprov_status_t tprov_derive_device_key(const char *fleet_key_b64, const char *device_id,
                                       char *out, size_t out_size);

/* Writes the request signature, base64(HMAC-SHA256(device key, "v1\n" device "\n" timestamp)),
 * and a NUL to out (out_size >= TPROV_SIGNATURE_B64_LEN + 1). The device key is the 44-character
 * base64 text flashed at the factory. Errors as tprov_derive_device_key. */
tprov_status_t tprov_sign(const char *device_id, uint64_t timestamp, const char *device_key_b64,
                          char *out, size_t out_size);

/* Writes the JSON request body and a NUL to out (out_size >= TPROV_REQUEST_BODY_MAX_LEN + 1 is
 * always enough) and its length, without the NUL, to *out_len. The body is a short-lived bearer
 * token: send it once, log it never, wipe it after. Errors as tprov_sign. */
tprov_status_t tprov_build_request_body(const char *device_id, uint64_t timestamp,
                                        const char *device_key_b64, char *out, size_t out_size,
                                        size_t *out_len);

/* Optional request fields, for devices outside the service's default fleet or flashed with a
 * later key version (docs/fleets.md, docs/operations.md). Neither is signed: the fleet picks the
 * key the signature is checked with, so a wrong one only fails the check. */
typedef struct {
    const char *fleet;    /* NULL or "": the service's default fleet; else ^[a-z0-9_-]{1,32}$ */
    uint32_t key_version; /* 0 or 1: version 1 (not sent); at most 999. Device keys only */
    bool sealed;          /* true: protocol v2, signed "v2\n...": the answer's credential is sealed
                             to the device key (open it with tprov_parse_sealed_response, or
                             tprov_parse_response_with_key) */
    unsigned char *request_hash; /* NULL, or TPROV_REQUEST_HASH_LEN bytes the builder fills with
                                    the SHA-256 of the body it wrote, for tprov_parse_answer */
} tprov_request_options_t;

/* As tprov_build_request_body, adding "fleet" and "keyVersion" from options (NULL: none).
 * Errors as tprov_build_request_body, and TPROV_ERR_REQUEST_OPTION. */
tprov_status_t tprov_build_request_body_with(const char *device_id, uint64_t timestamp,
                                             const char *device_key_b64,
                                             const tprov_request_options_t *options, char *out,
                                             size_t out_size, size_t *out_len);

/* Parses a text response body (Accept: text/plain) of len bytes; it need not be NUL-terminated.
 * Lines end in "\n" ("\r\n" is accepted too); each is key=value, split at the first '='. Unknown
 * keys are ignored; a known key must be well formed and appear at most once. A body with an
 * "error" key is an error response, otherwise it is a success that must carry username, device,
 * credential, host and created. When expected_device is not NULL a success for another device
 * is refused. On failure *out is wiped. Errors: TPROV_ERR_ARGUMENT and TPROV_ERR_RESPONSE_*. */
tprov_status_t tprov_parse_response(const char *body, size_t len, const char *expected_device,
                                    tprov_response_t *out);

/* The seal key of a v2 request: HMAC-SHA256(device key, "thinger-provisioner seal v1\nhmac\n"
 * device "\n" timestamp), with the timestamp the request was signed with. Wipe it after use.
 * Errors as tprov_sign. */
tprov_status_t tprov_derive_seal_key(const char *device_id, uint64_t timestamp,
                                     const char *device_key_b64,
                                     unsigned char key[TPROV_SEAL_KEY_LEN]);

/* Opens a sealed credential of sealed_len base64 characters (not NUL-terminated) with the seal
 * key, checking that it was sealed for this username, device and host: writes the credential
 * and a NUL to out (out_size >= TPROV_CREDENTIAL_MAX_LEN + 1 is always enough). On failure out
 * is wiped. Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_BUFFER_TOO_SMALL, TPROV_ERR_SEALED (malformed,
 * another mode, or not authentic), TPROV_ERR_ANSWER_KEY_REQUIRED (mode 2 or 3: only
 * tprov_parse_answer, with a pinned answer key, opens those), TPROV_ERR_CRYPTO. */
tprov_status_t tprov_open_sealed(const char *sealed_b64, size_t sealed_len,
                                 const unsigned char key[TPROV_SEAL_KEY_LEN], const char *username,
                                 const char *device, const char *host, char *out,
                                 size_t out_size);

/* As tprov_parse_response, for the answer to a sealed (v2) request: a success must carry
 * "sealed" (and no "credential": TPROV_ERR_RESPONSE_NOT_SEALED), which is opened with seal_key
 * into out->credential. No answer key is pinned: modes 2 and 3 are TPROV_ERR_ANSWER_KEY_REQUIRED.
 * Errors as tprov_parse_response and tprov_open_sealed. */
tprov_status_t tprov_parse_sealed_response(const char *body, size_t len,
                                           const char *expected_device,
                                           const unsigned char seal_key[TPROV_SEAL_KEY_LEN],
                                           tprov_response_t *out);

/* ------------------------------------------------------------------------------------------
 * Keys behind callbacks. Each callback returns 0 on success; anything else fails the call with
 * TPROV_ERR_KEY_CALLBACK and the output is wiped. ctx is the callback's own (a handle of the
 * secure element, an eFuse key block number, a tprov_p256_key_t). */
typedef enum {
    TPROV_KEY_HMAC = 1, /* a device key of an HMAC fleet (proof: [hmac]) */
    TPROV_KEY_P256 = 2, /* an X.509 device's ECDSA P-256 key: signs, and opens sealed answers
                           (ECDH) when ecdh is set */
    TPROV_KEY_RSA = 3   /* an X.509 device's RSA key, 2048 to 4096 bits: signs; v1 answers only */
} tprov_key_type_t;

/* mac = HMAC-SHA256(device key, message): the ESP32 HMAC peripheral's esp_hmac_calculate(). */
typedef int (*tprov_hmac_fn)(void *ctx, const unsigned char *message, size_t message_len,
                             unsigned char mac[32]);
/* Signs the SHA-256 digest of the signed message. P-256: 64 bytes r || s, each 32 bytes
 * big-endian (not DER). RSA: RSASSA-PKCS1-v1_5 with SHA-256, as many bytes as the modulus.
 * signature_size is TPROV_SIGNATURE_MAX_LEN; *signature_len is what was written. */
typedef int (*tprov_sign_fn)(void *ctx, const unsigned char digest[32], unsigned char *signature,
                             size_t signature_size, size_t *signature_len);
/* shared_x = the x-coordinate of ECDH(device private key, peer), peer an uncompressed P-256
 * point from the answer. The callback must refuse a point that is not on the curve (mbedTLS:
 * mbedtls_ecp_check_pubkey; secure elements do it themselves). */
typedef int (*tprov_ecdh_fn)(void *ctx, const unsigned char peer[TPROV_P256_POINT_LEN],
                             unsigned char shared_x[32]);

typedef struct {
    tprov_key_type_t type;
    tprov_hmac_fn hmac; /* TPROV_KEY_HMAC */
    tprov_sign_fn sign; /* TPROV_KEY_P256, TPROV_KEY_RSA */
    tprov_ecdh_fn ecdh; /* TPROV_KEY_P256; NULL: the key cannot open sealed answers */
    void *ctx;
} tprov_key_t;

/* The mbedTLS implementations, with the key in memory: the storage is the caller's (static or
 * on the stack), lives as long as the tprov_key_t, and is wiped with tprov_memzero() after. */
typedef struct {
    unsigned char key[TPROV_DEVICE_KEY_LEN];
} tprov_hmac_key_t;

/* mbedTLS's random generator signature (mbedtls_ctr_drbg_random, mbedtls_hardware_poll-style):
 * fills out with len random bytes, returns 0. */
typedef int (*tprov_rng_fn)(void *rng_ctx, unsigned char *out, size_t len);

typedef struct {
    unsigned char d[TPROV_P256_SCALAR_LEN]; /* the private scalar, big-endian */
    tprov_rng_fn rng;                       /* blinds the scalar multiplications */
    void *rng_ctx;
} tprov_p256_key_t;

/* A key of type TPROV_KEY_HMAC over the 44-character base64 device key, HMAC-SHA256 computed
 * on the stack (no allocation). Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_KEY (storage is wiped). */
tprov_status_t tprov_key_from_device_key(tprov_key_t *key, tprov_hmac_key_t *storage,
                                         const char *device_key_b64);

/* A key of type TPROV_KEY_P256 over the private scalar d (32 bytes, big-endian, 1 <= d < n):
 * signs with deterministic ECDSA (RFC 6979) when the mbedTLS build has it, else randomized
 * with rng; agrees keys with ECDH. rng is required (mbedTLS 3 blinds every scalar
 * multiplication). Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_KEY (d out of range), TPROV_ERR_CRYPTO. */
tprov_status_t tprov_key_from_p256(tprov_key_t *key, tprov_p256_key_t *storage,
                                   const unsigned char d[TPROV_P256_SCALAR_LEN], tprov_rng_fn rng,
                                   void *rng_ctx);

/* An X.509 device's certificate, DER, and optionally one intermediate CA certificate between it
 * and a CA the fleet trusts; the request carries them in base64. */
typedef struct {
    const unsigned char *der;
    size_t der_len;
    const unsigned char *chain_der; /* NULL: no intermediate */
    size_t chain_der_len;
} tprov_certificate_t;

/* Writes the request body for any key: a device key's HMAC signature, or an X.509 key's signature
 * with the certificate (and its intermediate) in base64. out_size >= TPROV_REQUEST_BODY_MAX_LEN + 1
 * holds any device-key body, TPROV_X509_REQUEST_BODY_MAX_LEN + 1 any body the service takes.
 * Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_DEVICE_ID, TPROV_ERR_BUFFER_TOO_SMALL,
 * TPROV_ERR_KEY_CALLBACK, TPROV_ERR_CRYPTO, TPROV_ERR_REQUEST_OPTION (a bad fleet or key
 * version; a certificate missing or empty for an X.509 key, or given for a device key; a key version with
 * a certificate; sealed with a key that cannot open the answer: RSA, or P-256 without ecdh). */
tprov_status_t tprov_build_request(const char *device_id, uint64_t timestamp,
                                   const tprov_key_t *key,
                                   const tprov_request_options_t *options,
                                   const tprov_certificate_t *certificate, char *out,
                                   size_t out_size, size_t *out_len);

/* For sealed (v2) requests only: an RSA key, or a P-256 key without ecdh, asked for a v1 answer
 * and reads it with tprov_parse_response().
 * As tprov_parse_sealed_response, opening the sealed credential with the key itself: envelope
 * mode 1 (hmac) for TPROV_KEY_HMAC, mode 3 (ECDH with the service's ephemeral key) for
 * TPROV_KEY_P256; timestamp is the one the request was signed with. Any other mode is
 * TPROV_ERR_SEALED. No answer key is pinned here, so mode 3 is TPROV_ERR_ANSWER_KEY_REQUIRED:
 * X.509 devices use tprov_parse_answer. Errors as tprov_parse_sealed_response, and
 * TPROV_ERR_KEY_CALLBACK. */
tprov_status_t tprov_parse_response_with_key(const char *body, size_t len,
                                             const char *expected_device, uint64_t timestamp,
                                             const tprov_key_t *key, tprov_response_t *out);

/* As tprov_open_sealed, with the key (see tprov_parse_response_with_key): mode 1 only. */
tprov_status_t tprov_open_sealed_with_key(const char *sealed_b64, size_t sealed_len,
                                          const tprov_key_t *key, const char *device,
                                          uint64_t timestamp, const char *username,
                                          const char *host, char *out, size_t out_size);

/* ------------------------------------------------------------------------------------------
 * Answer keys: the public halves of the service's answer key, pinned in firmware. With them,
 * every success answer (v1 in clear, or sealed in any mode) must carry an answer_signature that
 * verifies under one of them, over (UTF-8, "\n" between the lines, none after the last):
 *   thinger-provisioner answer v1
 *   <lowercase hex SHA-256 of the request body as sent>
 *   <username> <device> <host>            (one line each)
 *   <"credential" or "sealed"> <its value, as in the answer> <"true" or "false": created>
 * ECDSA P-256 with SHA-256, r || s in base64. Without them, v1 and mode 1 (hmac) answers are
 * accepted as before (mode 1 cannot be forged without the device key), but claim (mode 2) and ECDH
 * (mode 3) envelopes are refused: TPROV_ERR_ANSWER_KEY_REQUIRED. */

/* Returns 0 when signature (r || s, 32 bytes each, big-endian) is a valid ECDSA P-256 signature
 * of digest under public_key (an uncompressed point): a secure element's verify
 * (atcab_verify_extern), or NULL in tprov_answer_keys_t for mbedTLS. */
typedef int (*tprov_verify_fn)(void *ctx, const unsigned char public_key[TPROV_P256_POINT_LEN],
                               const unsigned char digest[32],
                               const unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN]);

typedef struct {
    const unsigned char *keys[TPROV_ANSWER_KEYS_MAX]; /* each TPROV_P256_POINT_LEN bytes */
    size_t count;           /* 1 or TPROV_ANSWER_KEYS_MAX (old and new key during a rotation);
                               0: none pinned */
    tprov_verify_fn verify; /* NULL: mbedTLS (mbedtls_ecdsa_verify) */
    void *verify_ctx;
} tprov_answer_keys_t;

/* Decodes a pinned answer key as `thinger-provisioner answer-key show` prints it: exactly
 * TPROV_ANSWER_KEY_B64_LEN characters of base64 (then a NUL) of an uncompressed point on P-256.
 * Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_KEY (point is wiped), TPROV_ERR_CRYPTO. */
tprov_status_t tprov_answer_key_from_base64(const char *b64,
                                            unsigned char point[TPROV_P256_POINT_LEN]);

/* The SHA-256 of a request body, for a body built without tprov_request_options_t.request_hash
 * (tprov_build_request_body) or elsewhere. Errors: TPROV_ERR_ARGUMENT, TPROV_ERR_CRYPTO. */
tprov_status_t tprov_hash_request(const char *body, size_t len,
                                  unsigned char hash[TPROV_REQUEST_HASH_LEN]);

/* Parses the answer to one request and checks it came from the service. key NULL: a v1 answer,
 * the credential in clear (as tprov_parse_response); else a sealed (v2) one, opened with the key
 * (as tprov_parse_response_with_key; timestamp is the one the request was signed with).
 * answer_keys NULL or count 0: nothing pinned (see above); else request_hash is the SHA-256 of
 * the request body as sent (tprov_request_options_t.request_hash) and every success answer must
 * verify under a pinned key before anything is opened. Error answers are not signed: they are
 * parsed as before (a party in the middle can always make a device fail, not succeed).
 * Errors as tprov_parse_response_with_key, TPROV_ERR_ANSWER_SIGNATURE and
 * TPROV_ERR_ANSWER_KEY_REQUIRED; on failure *out is wiped. */
tprov_status_t tprov_parse_answer(const char *body, size_t len, const char *expected_device,
                                  uint64_t timestamp, const tprov_key_t *key,
                                  const tprov_answer_keys_t *answer_keys,
                                  const unsigned char request_hash[TPROV_REQUEST_HASH_LEN],
                                  tprov_response_t *out);

/* The seconds to add to this device's clock to get the service's: server_time - now, saturated
 * to [-INT64_MAX, INT64_MAX] so that any pair of clocks, however wrong, gives a defined value. */
int64_t tprov_clock_offset(uint64_t server_time, uint64_t now);

/* now + offset_secs, saturated to [0, UINT64_MAX]: the timestamp to sign. */
uint64_t tprov_apply_clock_offset(uint64_t now, int64_t offset_secs);

/* Decides what follows one exchange. http_status is 0 when no HTTP answer came (DNS, connect,
 * timeout); parse_status and response are what tprov_parse_response gave for the body
 * (response is read only when parse_status is TPROV_OK). A caller that already retried once
 * with the server time treats a second TPROV_NEXT_RETRY_WITH_SERVER_TIME as TPROV_NEXT_GIVE_UP,
 * and one whose TLS peer failed verification gives up without asking. */
tprov_next_t tprov_next_step(long http_status, tprov_status_t parse_status,
                             const tprov_response_t *response);

/* Milliseconds to wait before retry number attempt (1 for the first retry). Exponential backoff
 * with full jitter: uniform in [0, min(cap_ms, base_ms * 2^(attempt-1))], drawn from
 * random_value. With a Retry-After (from the body or the header) that many seconds, at most
 * TPROV_RETRY_AFTER_MAX_SECS, come first and the jitter is added on top. Saturates at
 * UINT32_MAX. */
uint32_t tprov_retry_delay_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms,
                              bool has_retry_after, uint32_t retry_after_secs,
                              uint32_t random_value);

/* Overwrites len bytes at p with zeros in a way the compiler may not remove. */
void tprov_memzero(void *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* THINGER_PROVISION_H */
