/* What every fuzz target shares: the protocol's test vectors as keys, one opener per key kind,
 * and the checks of what the header promises about a parsed answer. A target is one file with
 * LLVMFuzzerTestOneInput; a new entry point is a few lines in one (or a new file and a name in
 * the Makefile's FUZZ_TARGETS). Every broken promise aborts, so libFuzzer keeps the input. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "thinger_provision.h"

/* The test vectors of docs/protocol.md and docs/firmware.md (clients/c/test has the same). */
#define FUZZ_DEVICE_ID "esp32_a1b2c3d4e5f6"
#define FUZZ_TIMESTAMP 1764150000u
#define FUZZ_DEVICE_KEY_B64 "slJ/UknDHHGumvra+RjeJHZq2Cp87+EN3n7coIJFlxA="
#define FUZZ_CLAIM_SECRET "workshop-claim-secret-0001"
#define FUZZ_CLAIM_DEVICE "ws_kit0001"

#define FUZZ_ASSERT(cond) ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))

/* How an opener opens a sealed answer: the seal key in hand, or a key behind callbacks. */
typedef struct {
    const char *name;
    const unsigned char *seal_key; /* tprov_parse_sealed_response, tprov_open_sealed */
    const tprov_key_t *key;        /* tprov_parse_response_with_key, tprov_open_sealed_with_key */
    const char *device;            /* the device the key is for */
    unsigned char mode;            /* the one envelope mode it may open; 0: none */
} fuzz_opener_t;

/* Which of fuzz_openers() hold the same device key, one as a seal key and one as a key: they
 * must give the same answer to every input. */
#define FUZZ_OPENER_SEAL_KEY 0
#define FUZZ_OPENER_DEVICE_KEY 1
#define FUZZ_OPENER_COUNT 4

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_fail(const char *file, int line, const char *what);
/* The openers, one per key kind: the device-key seal key, a claim secret's seal key (the core
 * has no claim mode: it must open nothing), the device key behind its callback, and the X.509
 * vector's P-256 key (ECDH). */
const fuzz_opener_t *fuzz_openers(void);
tprov_status_t fuzz_parse_sealed(const fuzz_opener_t *opener, const char *body, size_t len,
                                 const char *expected_device, tprov_response_t *out);
tprov_status_t fuzz_open_sealed(const fuzz_opener_t *opener, const char *sealed, size_t len,
                                const char *username, const char *device, const char *host,
                                char *out, size_t out_size);

int fuzz_all_zero(const void *p, size_t len);
/* A status the header names (tprov_status_name does not say "TPROV_UNKNOWN"). */
void fuzz_check_status(tprov_status_t status);
/* What a parser promises: on failure *r is zero; on success every field passed its rule, a
 * success is for expected_device (when not NULL) and an error carries no credentials. */
void fuzz_check_response(tprov_status_t status, const tprov_response_t *r,
                         const char *expected_device);
/* tprov_next_step against the documented table (docs/firmware.md, Status codes). */
void fuzz_check_next_step(long http_status, tprov_status_t status, const tprov_response_t *r);
/* tprov_next_step and tprov_retry_delay_ms over a parse result, for every HTTP status the
 * protocol names: the documented table (docs/firmware.md, Status codes). */
void fuzz_check_next_steps(tprov_status_t status, const tprov_response_t *r);

#endif /* FUZZ_COMMON_H */
