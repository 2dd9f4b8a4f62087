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
/* The largest text response a v1 server may send; anything longer is refused unparsed. */
#define TPROV_RESPONSE_MAX_LEN 1024
/* server_time values above this (9999-12-31T23:59:59Z) are refused as malformed. */
#define TPROV_SERVER_TIME_MAX 253402300799u
/* A sealed credential (protocol v2): base64 of format (1 byte), mode (1), nonce (12), the
 * encrypted credential (1 to TPROV_CREDENTIAL_MAX_LEN) and the GCM tag (16). */
#define TPROV_SEAL_KEY_LEN 32
#define TPROV_SEAL_FORMAT 1
#define TPROV_SEAL_MODE_HMAC 1 /* the key is derived from the device key (claim mode is 2) */
#define TPROV_SEALED_MAX_LEN (2 + 12 + TPROV_CREDENTIAL_MAX_LEN + 16)
#define TPROV_SEALED_B64_MAX_LEN (((TPROV_SEALED_MAX_LEN + 2) / 3) * 4)
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
    TPROV_ERR_RESPONSE_NOT_SEALED    /* a sealed request got a credential in clear: a downgrade */
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
    uint32_t key_version; /* 0 or 1: version 1 (not sent); at most 999 */
    bool sealed;          /* true: protocol v2, signed "v2\n...": the answer's credential is sealed
                             to the device key (open it with tprov_parse_sealed_response) */
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
 * another mode, or not authentic), TPROV_ERR_CRYPTO. */
tprov_status_t tprov_open_sealed(const char *sealed_b64, size_t sealed_len,
                                 const unsigned char key[TPROV_SEAL_KEY_LEN], const char *username,
                                 const char *device, const char *host, char *out,
                                 size_t out_size);

/* As tprov_parse_response, for the answer to a sealed (v2) request: a success must carry
 * "sealed" (and no "credential": TPROV_ERR_RESPONSE_NOT_SEALED), which is opened with seal_key
 * into out->credential. Errors as tprov_parse_response and tprov_open_sealed. */
tprov_status_t tprov_parse_sealed_response(const char *body, size_t len,
                                           const char *expected_device,
                                           const unsigned char seal_key[TPROV_SEAL_KEY_LEN],
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
