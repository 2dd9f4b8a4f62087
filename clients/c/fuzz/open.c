/* The open functions (tprov_open_sealed, tprov_open_sealed_with_key) with every key kind, with
 * the caller's strings as hostile as the envelope. Input: one byte that sizes the output buffer
 * (1 to 256 bytes), then sealed "\n" username "\n" device "\n" host; a missing part is "". */
#include <stdlib.h>
#include <string.h>

#include "mbedtls/base64.h"

#include "common.h"

#define PARTS 4
#define UNTOUCHED 0x5A

/* A heap copy of exactly len bytes, plus a NUL when terminate is set: AddressSanitizer sees any
 * read past either end. */
static char *copy(const uint8_t *data, size_t len, int terminate)
{
    char *s = (char *)malloc(len + (terminate ? 1u : 0u) + (len == 0 && !terminate ? 1u : 0u));

    FUZZ_ASSERT(s != NULL);
    memcpy(s, data, len);
    if (terminate) {
        s[len] = '\0';
    }
    return s;
}

/* The envelope's mode byte, or -1 when the value is not base64 of at least 2 bytes. */
static int envelope_mode(const char *sealed, size_t len)
{
    unsigned char envelope[TPROV_SEALED_MAX_LEN + 4];
    size_t envelope_len = 0;

    if (len > TPROV_SEALED_B64_MAX_LEN ||
        mbedtls_base64_decode(envelope, sizeof envelope, &envelope_len,
                              (const unsigned char *)sealed, len) != 0 ||
        envelope_len < 2u) {
        return -1;
    }
    return envelope[1];
}

/* Opens into a fresh buffer of exactly out_size bytes and checks what the header promises; *out
 * is the caller's to free. */
static tprov_status_t open_into(const fuzz_opener_t *opener, char *const parts[PARTS],
                                const size_t lens[PARTS], size_t out_size, char **out)
{
    tprov_status_t status;
    size_t k;

    *out = (char *)malloc(out_size);
    FUZZ_ASSERT(*out != NULL);
    memset(*out, UNTOUCHED, out_size);
    status = fuzz_open_sealed(opener, parts[0], lens[0], parts[1], parts[2], parts[3], *out,
                              out_size);
    fuzz_check_status(status);
    if (status == TPROV_OK) {
        const char *nul = (const char *)memchr(*out, '\0', out_size);
        size_t len = nul == NULL ? out_size : (size_t)(nul - *out);

        FUZZ_ASSERT(len >= 1u && len < out_size && len <= TPROV_CREDENTIAL_MAX_LEN);
        for (k = 0; k < len; k++) {
            FUZZ_ASSERT((unsigned char)(*out)[k] > 0x20u && (unsigned char)(*out)[k] < 0x7Fu);
        }
        /* Only the opener's own mode opens: never claim mode, never a foreign one. */
        FUZZ_ASSERT(opener->mode != 0u && envelope_mode(parts[0], lens[0]) == (int)opener->mode);
        return status;
    }
    /* Nothing of a credential is left: untouched, or wiped. */
    FUZZ_ASSERT((*out)[0] == '\0');
    for (k = 0; k < out_size; k++) {
        FUZZ_ASSERT((*out)[k] == '\0' || (*out)[k] == UNTOUCHED);
    }
    if (status == TPROV_ERR_SEALED || status == TPROV_ERR_KEY_CALLBACK ||
        status == TPROV_ERR_CRYPTO) {
        FUZZ_ASSERT(fuzz_all_zero(*out, out_size));
    }
    return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_opener_t *openers = fuzz_openers();
    size_t out_size;
    size_t start = 1;
    size_t lens[PARTS] = { 0 };
    char *parts[PARTS];
    char *out[FUZZ_OPENER_COUNT];
    tprov_status_t status[FUZZ_OPENER_COUNT];
    size_t i;
    size_t k;

    if (size == 0) {
        return 0;
    }
    out_size = 1u + data[0];
    for (k = 0; k < PARTS; k++) {
        const uint8_t *end = start < size ? memchr(data + start, '\n', size - start) : NULL;
        size_t stop = k == PARTS - 1u || end == NULL ? size : (size_t)(end - data);

        lens[k] = start < stop ? stop - start : 0u;
        parts[k] = copy(data + (start < size ? start : size), lens[k], k != 0);
        start = stop + 1u;
    }

    for (i = 0; i < FUZZ_OPENER_COUNT; i++) {
        status[i] = open_into(&openers[i], parts, lens, out_size, &out[i]);
        if (status[i] == TPROV_OK) {
            /* The buffer's bound is exact: one byte less is too small, the NUL's own fits. */
            size_t len = strlen(out[i]);
            char *edge;

            FUZZ_ASSERT(open_into(&openers[i], parts, lens, len, &edge) ==
                        TPROV_ERR_BUFFER_TOO_SMALL);
            free(edge);
            FUZZ_ASSERT(open_into(&openers[i], parts, lens, len + 1u, &edge) == TPROV_OK);
            FUZZ_ASSERT(strcmp(edge, out[i]) == 0);
            free(edge);
        }
    }
    /* The same device key as a seal key and behind its callback: the same answer, for every
     * device the callback accepts (another device's key or associated data does not open). */
    if (tprov_validate_device_id(parts[2]) == TPROV_OK) {
        FUZZ_ASSERT(status[FUZZ_OPENER_SEAL_KEY] == status[FUZZ_OPENER_DEVICE_KEY]);
        FUZZ_ASSERT(memcmp(out[FUZZ_OPENER_SEAL_KEY], out[FUZZ_OPENER_DEVICE_KEY], out_size) == 0);
    } else {
        FUZZ_ASSERT(status[FUZZ_OPENER_DEVICE_KEY] == TPROV_ERR_DEVICE_ID);
    }

    for (i = 0; i < FUZZ_OPENER_COUNT; i++) {
        free(out[i]);
    }
    for (k = 0; k < PARTS; k++) {
        free(parts[k]);
    }
    return 0;
}
