// Stand-in for ESP-IDF's esp_hmac.h (5.x: components/esp_hw_support/include; 4.4: one copy per
// chip under components/esp_hw_support/include/soc/<chip>, none for the classic ESP32): the
// declarations the example sketch uses, with their signatures. Host compile check only (see
// ../README.md).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "esp_err.h"
#include "soc/soc_caps.h"

#if !SOC_HMAC_SUPPORTED && !CI_HEADER_CHECK
#error "HMAC peripheral is not supported for the selected target"
#endif

#ifdef __cplusplus
extern "C" {
#endif

// The eFuse key blocks the HMAC peripheral can use: BLOCK_KEY0 to BLOCK_KEY5.
typedef enum {
    HMAC_KEY0 = 0,
    HMAC_KEY1,
    HMAC_KEY2,
    HMAC_KEY3,
    HMAC_KEY4,
    HMAC_KEY5,
    HMAC_KEY_MAX
} hmac_key_id_t;

// HMAC-SHA256 of message with the key block key_id, whose purpose must be HMAC_UP ("upstream"):
// ESP_OK, ESP_ERR_INVALID_ARG or ESP_FAIL. hmac must hold 32 bytes.
esp_err_t esp_hmac_calculate(hmac_key_id_t key_id, const void *message, size_t message_len,
                             uint8_t *hmac);

#ifdef __cplusplus
}
#endif
