/* The clock and retry arithmetic over raw integers: tprov_clock_offset, tprov_apply_clock_offset
 * and tprov_retry_delay_ms against the header's promises, computed here in 128 bits. Input:
 * little-endian server_time (8 bytes), now (8), offset (8), attempt, base_ms, cap_ms,
 * retry_after_secs, random_value (4 each), has_retry_after (1); then tprov_next_step over an
 * HTTP status (8), a parse status (1) and a response's kind, error, server_time flag (1 each).
 * Missing bytes are 0. */
#include <string.h>

#include "common.h"

/* clang and gcc: exact for every sum and product here */
__extension__ typedef __int128 wide_t;

static uint64_t take(const uint8_t **data, size_t *size, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n && i < *size; i++) {
        v |= (uint64_t)(*data)[i] << (8u * i);
    }
    i = n < *size ? n : *size;
    *data += i;
    *size -= i;
    return v;
}

static wide_t clamp(wide_t v, wide_t low, wide_t high)
{
    return v < low ? low : v > high ? high : v;
}

static void check_clock(uint64_t server_time, uint64_t now, int64_t offset)
{
    int64_t got = tprov_clock_offset(server_time, now);
    wide_t difference = (wide_t)server_time - (wide_t)now;

    /* server_time - now, saturated to [-INT64_MAX, INT64_MAX]. */
    FUZZ_ASSERT((wide_t)got == clamp(difference, -(wide_t)INT64_MAX, INT64_MAX));
    /* Unsaturated, the offset takes now back to server_time exactly. */
    if (difference >= -(wide_t)INT64_MAX && difference <= INT64_MAX) {
        FUZZ_ASSERT(tprov_apply_clock_offset(now, got) == server_time);
    }
    /* now + offset, saturated to [0, UINT64_MAX], for any offset (INT64_MIN too). */
    FUZZ_ASSERT((wide_t)tprov_apply_clock_offset(now, offset) ==
                clamp((wide_t)now + offset, 0, UINT64_MAX));
}

static void check_retry(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms, bool has_retry_after,
                        uint32_t retry_after_secs, uint32_t random_value)
{
    uint32_t got = tprov_retry_delay_ms(attempt, base_ms, cap_ms, has_retry_after,
                                        retry_after_secs, random_value);
    uint32_t doublings = attempt > 1u ? attempt - 1u : 0u;
    /* min(cap, base * 2^(attempt-1)); past 2^32 the product is above any 32-bit cap. */
    wide_t ceiling = doublings >= 32u ? (base_ms == 0u ? 0 : cap_ms)
                                      : clamp((wide_t)base_ms << doublings, 0, cap_ms);
    wide_t wait_ms = has_retry_after ? (wide_t)(retry_after_secs < TPROV_RETRY_AFTER_MAX_SECS
                                                    ? retry_after_secs
                                                    : TPROV_RETRY_AFTER_MAX_SECS) * 1000
                                     : 0;
    wide_t expected = wait_ms + (wide_t)random_value % (ceiling + 1);

    /* Retry-After first (clamped to an hour), full jitter in [0, ceiling] on top, saturated. */
    FUZZ_ASSERT((wide_t)got == clamp(expected, 0, UINT32_MAX));
    FUZZ_ASSERT((wide_t)got >= wait_ms && (wide_t)got <= clamp(wait_ms + ceiling, 0, UINT32_MAX));
}

/* The codes tprov_next_step tells apart, and some it does not. */
static const char *const ERRORS[] = { "clock_skew", "replayed", "upstream_unavailable",
                                      "internal_error", "invalid_signature", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t server_time = take(&data, &size, 8);
    uint64_t now = take(&data, &size, 8);
    int64_t offset = (int64_t)take(&data, &size, 8);
    uint32_t attempt = (uint32_t)take(&data, &size, 4);
    uint32_t base_ms = (uint32_t)take(&data, &size, 4);
    uint32_t cap_ms = (uint32_t)take(&data, &size, 4);
    uint32_t retry_after_secs = (uint32_t)take(&data, &size, 4);
    uint32_t random_value = (uint32_t)take(&data, &size, 4);
    bool has_retry_after = (take(&data, &size, 1) & 1u) != 0u;
    long http_status;
    tprov_status_t status;
    tprov_response_t r;

    check_clock(server_time, now, offset);
    /* A parsed server_time is at most TPROV_SERVER_TIME_MAX: the clocks a device really meets. */
    check_clock(server_time % (TPROV_SERVER_TIME_MAX + 1u), now, offset);
    check_retry(attempt, base_ms, cap_ms, has_retry_after, retry_after_secs, random_value);

    http_status = (long)take(&data, &size, 8);
    status = (tprov_status_t)(take(&data, &size, 1) % (TPROV_ERR_KEY_CALLBACK + 1u));
    memset(&r, 0, sizeof r);
    r.kind = (tprov_response_kind_t)(take(&data, &size, 1) % 3u);
    strcpy(r.error, ERRORS[take(&data, &size, 1) % (sizeof ERRORS / sizeof ERRORS[0])]);
    r.has_server_time = (take(&data, &size, 1) & 1u) != 0u;
    r.server_time = r.has_server_time ? server_time % (TPROV_SERVER_TIME_MAX + 1u) : 0u;
    r.has_retry_after = has_retry_after;
    r.retry_after_secs = retry_after_secs;
    fuzz_check_next_step(http_status, status, &r);
    return 0;
}
