/* Answer signatures: tprov_parse_answer with no answer key, one pinned key (the test vector's),
 * two (another key first), a verify callback that accepts everything and one that refuses
 * everything; each with key NULL (v1), the device key and the P-256 key (the vectors' keys,
 * common.h). And tprov_answer_key_from_base64 and tprov_hash_request over the same bytes.
 * Input: one byte of flags, then the body. Flag 1: the 32 bytes after it are the request hash
 * (else the vector's, the SHA-256 of its 125-byte request), the body follows them.
 *
 * The signature invariant is sound because the fuzzer cannot forge ECDSA: under a real
 * verification (mbedTLS, pinned keys), a success must be an answer whose signed message, rebuilt
 * here from the output and the body's own lines (not by the core's code), is one of the three
 * messages the seeds carry a signature for (fuzz/seeds.sh), and that signature must verify here
 * too. Under the accepting callback the fuzzer reaches success with any fields: the digest the
 * core asks about must be the SHA-256 of the message rebuilt here, so every field it signs is the
 * one it returns. */
#include <stdlib.h>
#include <string.h>

#include "mbedtls/base64.h"
#include "mbedtls/ecdsa.h"
#include "mbedtls/ecp.h"
#include "mbedtls/md.h"

#include "common.h"

#define FLAG_HASH_FROM_INPUT 0x01u
#define MESSAGE_MAX 1024
#define MAX_CALLS 4

/* The spec's vector (docs/protocol.md, Answer signatures): the request's SHA-256 and the public
 * key; the three messages of fuzz/seeds.sh's signed answers: mode 1 (the spec's own), v1 in
 * clear and mode 3 (the X.509 vector's envelope), all for acme, the vector device and host. */
static const unsigned char VECTOR_HASH[TPROV_REQUEST_HASH_LEN] = {
    0xa5, 0xd5, 0x79, 0x4b, 0x07, 0x47, 0x69, 0x89, 0xa2, 0xec, 0x44, 0x1f, 0x40, 0x5d, 0x03, 0x74,
    0x1a, 0xc3, 0xe5, 0x7e, 0x60, 0x6e, 0x95, 0xc6, 0xbd, 0x16, 0x0c, 0x3d, 0x58, 0x33, 0x17, 0x27
};
#define VECTOR_REQUEST                                                                   \
    "{\"device\":\"esp32_a1b2c3d4e5f6\",\"timestamp\":1764150000,"                       \
    "\"signature\":\"zXIu2qxo13N67KGnC7D8mv6F38HGNbJlsBOSSrKLmdA=\",\"version\":2}"
#define ANSWER_KEY_B64 \
    "BEbkvrsJVTiANGn39mDOrQWXj91l36YhFVMPWCJAAN3SmWYqOVaMp02n7TaXb1+Xre6vE9XF17zKCrCSxpVvpfY="
#define SIGNED_PREFIX                                                                    \
    "thinger-provisioner answer v1\n"                                                    \
    "a5d5794b07476989a2ec441f405d03741ac3e57e606e95c6bd160c3d58331727\n"                 \
    "acme\n" FUZZ_DEVICE_ID "\nbackend.thinger.io\n"
static const char *const SIGNED_MESSAGES[] = {
    SIGNED_PREFIX "sealed\nAQEAAQIDBAUGBwgJCgvAbgqIbyh2XhGXWg3ZDzbAaRCewti+w3wMslflAGzlPfBBqmJ3DL2K"
                  "\ntrue",
    SIGNED_PREFIX "credential\nXq3kP9vL2mN8rT5wY7zA1bC4\ntrue",
    SIGNED_PREFIX "sealed\nAQMEl1bELjGsgI7WjwzAmGgW0mFMRwEKT0Pqy6NmP7buMjiziYCa0b5alkpe41o9ltrvS5ix"
                  "trdP4+IdoNyuz6JdLAABAgMEBQYHCAkKC2+DmAyfADnKSwBgUKVly8cl7aSPi0xVo+zaRumDRCMk+"
                  "AqhYEcGNBM=\ntrue",
};
#define SIGNED_COUNT (sizeof SIGNED_MESSAGES / sizeof SIGNED_MESSAGES[0])

/* Another deployment's key (a point of the curve no seed has a signature of), d = 7. */
static unsigned char g_answer_key[TPROV_P256_POINT_LEN];
static unsigned char g_other_key[TPROV_P256_POINT_LEN];
static mbedtls_ecp_group g_grp;
static mbedtls_ecp_point g_answer_q;

/* What the callbacks were asked. */
typedef struct {
    int accept;
    size_t calls;
    const unsigned char *keys[MAX_CALLS];
    unsigned char digest[MAX_CALLS][32];
    unsigned char signature[MAX_CALLS][TPROV_ECDSA_P256_SIGNATURE_LEN];
} recorder_t;

static int record_verify(void *ctx, const unsigned char public_key[TPROV_P256_POINT_LEN],
                         const unsigned char digest[32],
                         const unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN])
{
    recorder_t *rec = (recorder_t *)ctx;

    FUZZ_ASSERT(rec->calls < MAX_CALLS);
    rec->keys[rec->calls] = public_key;
    memcpy(rec->digest[rec->calls], digest, 32);
    memcpy(rec->signature[rec->calls], signature, TPROV_ECDSA_P256_SIGNATURE_LEN);
    rec->calls++;
    return rec->accept ? 0 : -1;
}

static void init_keys(void)
{
    static int done;
    mbedtls_mpi seven;
    size_t len = 0;

    if (done) {
        return;
    }
    done = 1;
    FUZZ_ASSERT(tprov_answer_key_from_base64(ANSWER_KEY_B64, g_answer_key) == TPROV_OK);
    mbedtls_ecp_group_init(&g_grp);
    mbedtls_ecp_point_init(&g_answer_q);
    mbedtls_mpi_init(&seven);
    FUZZ_ASSERT(mbedtls_ecp_group_load(&g_grp, MBEDTLS_ECP_DP_SECP256R1) == 0);
    FUZZ_ASSERT(mbedtls_ecp_point_read_binary(&g_grp, &g_answer_q, g_answer_key,
                                              TPROV_P256_POINT_LEN) == 0);
    {
        mbedtls_ecp_point p;

        mbedtls_ecp_point_init(&p);
        FUZZ_ASSERT(mbedtls_mpi_lset(&seven, 7) == 0);
        /* A public multiple of G: no secret, so no blinding randomness is needed. */
        FUZZ_ASSERT(mbedtls_ecp_muladd(&g_grp, &p, &seven, &g_grp.G, &seven, &g_grp.G) == 0);
        FUZZ_ASSERT(mbedtls_ecp_point_write_binary(&g_grp, &p, MBEDTLS_ECP_PF_UNCOMPRESSED, &len,
                                                   g_other_key, sizeof g_other_key) == 0);
        FUZZ_ASSERT(len == TPROV_P256_POINT_LEN);
        mbedtls_ecp_point_free(&p);
    }
    mbedtls_mpi_free(&seven);
    {
        unsigned char hash[TPROV_REQUEST_HASH_LEN];

        FUZZ_ASSERT(tprov_hash_request(VECTOR_REQUEST, sizeof VECTOR_REQUEST - 1u, hash) ==
                    TPROV_OK);
        FUZZ_ASSERT(memcmp(hash, VECTOR_HASH, sizeof hash) == 0);
    }
}

/* The value of the body's line "key=...", its CR cut as the parser cuts it; NULL when absent.
 * Only read after a success, where every known key appears once. */
static const char *line_value(const char *body, size_t len, const char *key, size_t *value_len)
{
    size_t key_len = strlen(key);
    size_t pos = 0;

    while (pos < len) {
        const char *line = body + pos;
        const char *newline = (const char *)memchr(line, '\n', len - pos);
        size_t line_len = newline != NULL ? (size_t)(newline - line) : len - pos;
        size_t cut = line_len > 0 && line[line_len - 1u] == '\r' ? line_len - 1u : line_len;

        if (cut > key_len && memcmp(line, key, key_len) == 0 && line[key_len] == '=') {
            *value_len = cut - key_len - 1u;
            return line + key_len + 1u;
        }
        pos += line_len + 1u;
    }
    return NULL;
}

static void append(char *out, size_t *n, const char *s, size_t len)
{
    FUZZ_ASSERT(*n + len < MESSAGE_MAX);
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

static void append_str(char *out, size_t *n, const char *s)
{
    append(out, n, s, strlen(s));
}

/* The spec's signed message for the success r parsed from body, written from the spec. */
static size_t rebuild_message(const char *body, size_t len, const unsigned char hash[32],
                              int sealed, const tprov_response_t *r, char out[MESSAGE_MAX])
{
    static const char HEX[] = "0123456789abcdef";
    const char *field = sealed ? "sealed" : "credential";
    size_t value_len = 0;
    const char *value = line_value(body, len, field, &value_len);
    size_t n = 0;
    size_t i;

    FUZZ_ASSERT(value != NULL);
    out[0] = '\0';
    append_str(out, &n, "thinger-provisioner answer v1\n");
    for (i = 0; i < 32; i++) {
        append(out, &n, &HEX[hash[i] >> 4], 1);
        append(out, &n, &HEX[hash[i] & 0x0Fu], 1);
    }
    append_str(out, &n, "\n");
    append_str(out, &n, r->username);
    append_str(out, &n, "\n");
    append_str(out, &n, r->device);
    append_str(out, &n, "\n");
    append_str(out, &n, r->host);
    append_str(out, &n, "\n");
    append_str(out, &n, field);
    append_str(out, &n, "\n");
    append(out, &n, value, value_len);
    append_str(out, &n, r->created ? "\ntrue" : "\nfalse");
    return n;
}

/* The body's answer_signature as r || s; it must be there after a success under pinned keys. */
static void body_signature(const char *body, size_t len,
                           unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN])
{
    unsigned char decoded[TPROV_ECDSA_P256_SIGNATURE_LEN + 3];
    size_t value_len = 0;
    size_t decoded_len = 0;
    const char *value = line_value(body, len, "answer_signature", &value_len);

    FUZZ_ASSERT(value != NULL && value_len == TPROV_ANSWER_SIGNATURE_B64_LEN);
    FUZZ_ASSERT(mbedtls_base64_decode(decoded, sizeof decoded, &decoded_len,
                                      (const unsigned char *)value, value_len) == 0);
    FUZZ_ASSERT(decoded_len == TPROV_ECDSA_P256_SIGNATURE_LEN);
    memcpy(signature, decoded, TPROV_ECDSA_P256_SIGNATURE_LEN);
}

/* The envelope's mode byte of the body's sealed line (the parser already decoded it). */
static int sealed_mode(const char *body, size_t len)
{
    unsigned char envelope[TPROV_SEALED_MAX_LEN + 3];
    size_t envelope_len = 0;
    size_t value_len = 0;
    const char *value = line_value(body, len, "sealed", &value_len);

    FUZZ_ASSERT(value != NULL);
    FUZZ_ASSERT(mbedtls_base64_decode(envelope, sizeof envelope, &envelope_len,
                                      (const unsigned char *)value, value_len) == 0 &&
                envelope_len >= 2u);
    return envelope[1];
}

/* SHA-256 with mbedTLS's generic digest call (the same in mbedTLS 2.28 and 3.x). */
static void sha256(const void *data, size_t len, unsigned char digest[32])
{
    FUZZ_ASSERT(mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256),
                           (const unsigned char *)data, len, digest) == 0);
}

static int is_success(tprov_status_t status, const tprov_response_t *r)
{
    return status == TPROV_OK && r->kind == TPROV_RESPONSE_SUCCESS;
}

/* The statuses that come before the signature is looked at: the same with or without keys. */
static int before_signature(tprov_status_t status)
{
    return status != TPROV_OK && status != TPROV_ERR_SEALED && status != TPROV_ERR_KEY_CALLBACK &&
           status != TPROV_ERR_ANSWER_KEY_REQUIRED && status != TPROV_ERR_ANSWER_SIGNATURE;
}

/* A pinned result against the unpinned one for the same key: errors and malformed bodies read
 * the same, and a signature only ever takes a success away. */
static void check_against_unpinned(tprov_status_t pinned, const tprov_response_t *p,
                                   tprov_status_t unpinned, const tprov_response_t *u,
                                   int key_opens_unpinned)
{
    if (before_signature(unpinned) || (unpinned == TPROV_OK && u->kind == TPROV_RESPONSE_ERROR)) {
        FUZZ_ASSERT(pinned == unpinned && memcmp(p, u, sizeof *p) == 0);
    }
    if (key_opens_unpinned && is_success(pinned, p)) {
        FUZZ_ASSERT(unpinned == TPROV_OK && memcmp(p, u, sizeof *p) == 0);
    }
}

/* tprov_answer_key_from_base64 over the body as a C string: only an uncompressed point on the
 * curve, from exactly 88 characters of base64, is accepted; else the point is wiped. */
static void check_answer_key(const char *text, size_t len)
{
    char *s = (char *)malloc(len + 1u);
    unsigned char point[TPROV_P256_POINT_LEN];
    unsigned char decoded[TPROV_P256_POINT_LEN + 3];
    size_t decoded_len = 0;
    size_t i;
    int valid = 0;
    tprov_status_t status;

    FUZZ_ASSERT(s != NULL);
    memcpy(s, text, len);
    s[len] = '\0';
    memset(point, 0xA5, sizeof point);
    status = tprov_answer_key_from_base64(s, point);
    fuzz_check_status(status);
    if (strlen(s) == TPROV_ANSWER_KEY_B64_LEN &&
        strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
            TPROV_ANSWER_KEY_B64_LEN &&
        mbedtls_base64_decode(decoded, sizeof decoded, &decoded_len, (const unsigned char *)s,
                              TPROV_ANSWER_KEY_B64_LEN) == 0 &&
        decoded_len == TPROV_P256_POINT_LEN && decoded[0] == 0x04u) {
        mbedtls_ecp_point q;

        mbedtls_ecp_point_init(&q);
        valid = mbedtls_ecp_point_read_binary(&g_grp, &q, decoded, TPROV_P256_POINT_LEN) == 0 &&
                mbedtls_ecp_check_pubkey(&g_grp, &q) == 0;
        mbedtls_ecp_point_free(&q);
    }
    if (valid) {
        FUZZ_ASSERT(status == TPROV_OK && memcmp(point, decoded, sizeof point) == 0);
    } else {
        FUZZ_ASSERT(status == TPROV_ERR_KEY);
        for (i = 0; i < sizeof point; i++) {
            FUZZ_ASSERT(point[i] == 0u);
        }
    }
    free(s);
}

enum { PIN_NONE, PIN_EMPTY, PIN_ONE, PIN_TWO, PIN_ACCEPT, PIN_REFUSE, PIN_COUNT };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_opener_t *openers = fuzz_openers();
    const tprov_key_t *keys[3];
    unsigned char hash[TPROV_REQUEST_HASH_LEN];
    unsigned char own_hash[TPROV_REQUEST_HASH_LEN];
    unsigned char check_hash[TPROV_REQUEST_HASH_LEN];
    const char *body;
    size_t len;
    size_t k;
    size_t p;

    init_keys();
    if (size == 0) {
        return 0;
    }
    if ((data[0] & FLAG_HASH_FROM_INPUT) != 0u && size > TPROV_REQUEST_HASH_LEN) {
        memcpy(hash, data + 1, sizeof hash);
        body = (const char *)data + 1 + sizeof hash;
        len = size - 1u - sizeof hash;
    } else {
        memcpy(hash, VECTOR_HASH, sizeof hash);
        body = (const char *)data + 1;
        len = size - 1u;
    }
    if (len == 0) {
        body = NULL;
    }

    /* tprov_hash_request is SHA-256, and the answer key reader takes any bytes. */
    FUZZ_ASSERT(tprov_hash_request(body, len, own_hash) == TPROV_OK);
    sha256(body != NULL ? body : "", len, check_hash);
    FUZZ_ASSERT(memcmp(own_hash, check_hash, sizeof own_hash) == 0);
    check_answer_key(body != NULL ? body : "", len);

    keys[0] = NULL;
    keys[1] = openers[FUZZ_OPENER_DEVICE_KEY].key;
    keys[2] = openers[3].key; /* the X.509 vector's P-256 key */
    for (k = 0; k < 3; k++) {
        const unsigned char *one[TPROV_ANSWER_KEYS_MAX] = { g_answer_key, NULL };
        const unsigned char *two[TPROV_ANSWER_KEYS_MAX] = { g_other_key, g_answer_key };
        recorder_t accept = { 1, 0u, { NULL }, { { 0 } }, { { 0 } } };
        recorder_t refuse = { 0, 0u, { NULL }, { { 0 } }, { { 0 } } };
        tprov_answer_keys_t pins[PIN_COUNT];
        tprov_response_t out[PIN_COUNT];
        tprov_status_t status[PIN_COUNT];
        tprov_response_t reference;
        tprov_status_t reference_status;

        memset(pins, 0, sizeof pins);
        memcpy(pins[PIN_ONE].keys, one, sizeof one);
        pins[PIN_ONE].count = 1u;
        memcpy(pins[PIN_TWO].keys, two, sizeof two);
        pins[PIN_TWO].count = 2u;
        memcpy(pins[PIN_ACCEPT].keys, two, sizeof two);
        pins[PIN_ACCEPT].count = 2u;
        pins[PIN_ACCEPT].verify = record_verify;
        pins[PIN_ACCEPT].verify_ctx = &accept;
        memcpy(pins[PIN_REFUSE].keys, two, sizeof two);
        pins[PIN_REFUSE].count = 2u;
        pins[PIN_REFUSE].verify = record_verify;
        pins[PIN_REFUSE].verify_ctx = &refuse;

        for (p = 0; p < PIN_COUNT; p++) {
            memset(&out[p], 0x5A, sizeof out[p]);
            status[p] = tprov_parse_answer(body, len, FUZZ_DEVICE_ID, FUZZ_TIMESTAMP, keys[k],
                                           p == PIN_NONE ? NULL : &pins[p], hash, &out[p]);
            /* On failure the response is zero; a success is well formed. */
            fuzz_check_response(status[p], &out[p], FUZZ_DEVICE_ID);
            fuzz_check_next_steps(status[p], &out[p]);
        }

        /* No key pinned: exactly the parsers of before; only mode 1 opens, never 2 or 3. */
        memset(&reference, 0x5A, sizeof reference);
        reference_status = k == 0 ? tprov_parse_response(body, len, FUZZ_DEVICE_ID, &reference)
                                  : tprov_parse_response_with_key(body, len, FUZZ_DEVICE_ID,
                                                                  FUZZ_TIMESTAMP, keys[k],
                                                                  &reference);
        FUZZ_ASSERT(status[PIN_NONE] == reference_status &&
                    memcmp(&out[PIN_NONE], &reference, sizeof reference) == 0);
        FUZZ_ASSERT(status[PIN_EMPTY] == status[PIN_NONE] &&
                    memcmp(&out[PIN_EMPTY], &out[PIN_NONE], sizeof reference) == 0);
        if (is_success(status[PIN_NONE], &out[PIN_NONE]) && k != 0) {
            FUZZ_ASSERT(k == 1 && sealed_mode(body, len) == TPROV_SEAL_MODE_HMAC);
        }

        /* The other key first changes nothing: the fuzzer has no signature under it. */
        FUZZ_ASSERT(status[PIN_TWO] == status[PIN_ONE] &&
                    memcmp(&out[PIN_TWO], &out[PIN_ONE], sizeof reference) == 0);
        for (p = PIN_ONE; p < PIN_COUNT; p++) {
            check_against_unpinned(status[p], &out[p], status[PIN_NONE], &out[PIN_NONE], k != 2);
        }

        /* Under mbedTLS a success is one of the seeds' signed answers, verified here again. */
        if (is_success(status[PIN_ONE], &out[PIN_ONE])) {
            char message[MESSAGE_MAX];
            size_t message_len =
                rebuild_message(body, len, hash, k != 0, &out[PIN_ONE], message);
            unsigned char digest[32];
            unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN];
            mbedtls_mpi r;
            mbedtls_mpi s;
            size_t i;
            int known = 0;

            for (i = 0; i < SIGNED_COUNT; i++) {
                known |= strcmp(message, SIGNED_MESSAGES[i]) == 0;
            }
            FUZZ_ASSERT(known);
            body_signature(body, len, signature);
            sha256(message, message_len, digest);
            mbedtls_mpi_init(&r);
            mbedtls_mpi_init(&s);
            FUZZ_ASSERT(mbedtls_mpi_read_binary(&r, signature, 32) == 0 &&
                        mbedtls_mpi_read_binary(&s, signature + 32, 32) == 0);
            FUZZ_ASSERT(mbedtls_ecdsa_verify(&g_grp, digest, sizeof digest, &g_answer_q, &r, &s) ==
                        0);
            mbedtls_mpi_free(&r);
            mbedtls_mpi_free(&s);
            /* A key that accepts everything accepts this too. */
            FUZZ_ASSERT(status[PIN_ACCEPT] == TPROV_OK &&
                        memcmp(&out[PIN_ACCEPT], &out[PIN_ONE], sizeof reference) == 0);
        }

        /* The accepting callback: asked once, about the first key, the body's signature and the
         * digest of the message rebuilt from what the core returns. */
        if (is_success(status[PIN_ACCEPT], &out[PIN_ACCEPT])) {
            char message[MESSAGE_MAX];
            size_t message_len =
                rebuild_message(body, len, hash, k != 0, &out[PIN_ACCEPT], message);
            unsigned char digest[32];
            unsigned char signature[TPROV_ECDSA_P256_SIGNATURE_LEN];

            body_signature(body, len, signature);
            sha256(message, message_len, digest);
            FUZZ_ASSERT(accept.calls == 1u && accept.keys[0] == g_other_key);
            FUZZ_ASSERT(memcmp(accept.digest[0], digest, sizeof digest) == 0);
            FUZZ_ASSERT(memcmp(accept.signature[0], signature, sizeof signature) == 0);
        } else {
            FUZZ_ASSERT(accept.calls <= 1u);
        }
        /* The refusing callback: nothing succeeds; asked at all, it is asked about both keys in
         * order, and the answer is refused as unsigned. */
        FUZZ_ASSERT(!is_success(status[PIN_REFUSE], &out[PIN_REFUSE]));
        FUZZ_ASSERT(refuse.calls == 0u || (refuse.calls == 2u && refuse.keys[0] == g_other_key &&
                                           refuse.keys[1] == g_answer_key &&
                                           status[PIN_REFUSE] == TPROV_ERR_ANSWER_SIGNATURE));
        /* Both callbacks see the same bodies up to the verification. */
        FUZZ_ASSERT(refuse.calls == 2u * accept.calls);
        /* A pinned success is never an unsigned one, and each key opens only its own mode. */
        for (p = PIN_ONE; p < PIN_COUNT; p++) {
            if (is_success(status[p], &out[p])) {
                size_t value_len = 0;

                FUZZ_ASSERT(line_value(body, len, "answer_signature", &value_len) != NULL);
                FUZZ_ASSERT(k == 0 || sealed_mode(body, len) == (k == 1 ? TPROV_SEAL_MODE_HMAC
                                                                        : TPROV_SEAL_MODE_ECDH));
            }
        }
    }
    return 0;
}
