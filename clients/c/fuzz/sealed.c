/* The answer parser of protocol v2 with every key kind (common.h, fuzz_openers): the sealed
 * credential is opened by the seal key in hand, the device key behind its callback, the P-256
 * key by ECDH, and refused by a claim secret's key (the core has no claim mode). */
#include <string.h>

#include "common.h"

/* The statuses a line of the body decides, before any key is used. */
static int is_line_status(tprov_status_t status)
{
    return status == TPROV_ERR_RESPONSE_EMPTY || status == TPROV_ERR_RESPONSE_TOO_LARGE ||
           status == TPROV_ERR_RESPONSE_TRUNCATED || status == TPROV_ERR_RESPONSE_SYNTAX ||
           status == TPROV_ERR_RESPONSE_DUPLICATE || status == TPROV_ERR_RESPONSE_VALUE_TOO_LONG ||
           status == TPROV_ERR_RESPONSE_VALUE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = size == 0 ? NULL : (const char *)data;
    const fuzz_opener_t *openers = fuzz_openers();
    tprov_response_t v1;
    tprov_response_t sealed[FUZZ_OPENER_COUNT];
    tprov_status_t v1_status = tprov_parse_response(body, size, NULL, &v1);
    tprov_status_t status[FUZZ_OPENER_COUNT];
    size_t i;

    for (i = 0; i < FUZZ_OPENER_COUNT; i++) {
        status[i] = fuzz_parse_sealed(&openers[i], body, size, openers[i].device, &sealed[i]);
        fuzz_check_response(status[i], &sealed[i], openers[i].device);
        fuzz_check_next_steps(status[i], &sealed[i]);
        /* Nothing in the clear passes for sealed, and no key opens what is not its mode. */
        FUZZ_ASSERT(status[i] != TPROV_OK || sealed[i].kind == TPROV_RESPONSE_ERROR ||
                    openers[i].mode != 0u);
        FUZZ_ASSERT(status[i] != TPROV_OK || sealed[i].kind == TPROV_RESPONSE_ERROR ||
                    v1_status != TPROV_OK);
        /* Errors and malformed lines read the same whatever the key. */
        if (is_line_status(v1_status)) {
            FUZZ_ASSERT(status[i] == v1_status);
        }
        if (v1_status == TPROV_OK && v1.kind == TPROV_RESPONSE_ERROR) {
            FUZZ_ASSERT(status[i] == TPROV_OK && memcmp(&sealed[i], &v1, sizeof v1) == 0);
        }
    }
    /* The same device key as a seal key and behind its callback: the same answer. */
    FUZZ_ASSERT(status[FUZZ_OPENER_SEAL_KEY] == status[FUZZ_OPENER_DEVICE_KEY]);
    FUZZ_ASSERT(memcmp(&sealed[FUZZ_OPENER_SEAL_KEY], &sealed[FUZZ_OPENER_DEVICE_KEY],
                       sizeof sealed[0]) == 0);
    return 0;
}
