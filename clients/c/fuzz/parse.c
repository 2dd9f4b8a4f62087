/* The text answer parser of protocol v1 (tprov_parse_response): any bytes, as they come off the
 * wire, with and without an expected device; what it returns drives tprov_next_step. */
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data; /* libFuzzer's copy is exactly size bytes */
    tprov_response_t any;
    tprov_response_t mine;
    tprov_status_t status = tprov_parse_response(size == 0 ? NULL : body, size, NULL, &any);
    tprov_status_t mine_status =
        tprov_parse_response(size == 0 ? NULL : body, size, FUZZ_DEVICE_ID, &mine);

    fuzz_check_response(status, &any, NULL);
    fuzz_check_response(mine_status, &mine, FUZZ_DEVICE_ID);
    /* The expected device changes one thing: a success for another device is refused. */
    if (status == TPROV_OK && any.kind == TPROV_RESPONSE_SUCCESS &&
        strcmp(any.device, FUZZ_DEVICE_ID) != 0) {
        FUZZ_ASSERT(mine_status == TPROV_ERR_RESPONSE_DEVICE_MISMATCH);
    } else {
        FUZZ_ASSERT(mine_status == status && memcmp(&mine, &any, sizeof any) == 0);
    }
    fuzz_check_next_steps(status, &any);
    if (size > TPROV_RESPONSE_MAX_LEN) {
        FUZZ_ASSERT(status == TPROV_ERR_RESPONSE_TOO_LARGE);
    }
    return 0;
}
