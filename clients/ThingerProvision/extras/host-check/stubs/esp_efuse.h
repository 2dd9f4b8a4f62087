// Stand-in for ESP-IDF's esp_efuse.h (components/efuse/include, with the chip's esp_efuse_chip.h
// in 5.x) for a chip with key purposes (ESP32-S2 and later): only what the example sketch calls,
// with the libraries' signatures. Host compile check only (see ../README.md).
#pragma once
#include <stdbool.h>
#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

// The key blocks (the enum also names blocks 0 to 3 and 10, which the sketch does not use).
typedef enum {
    EFUSE_BLK_KEY0 = 4,
    EFUSE_BLK_KEY1 = 5,
    EFUSE_BLK_KEY2 = 6,
    EFUSE_BLK_KEY3 = 7,
    EFUSE_BLK_KEY4 = 8,
    EFUSE_BLK_KEY5 = 9,
    EFUSE_BLK_KEY_MAX = 10
} esp_efuse_block_t;

typedef enum {
    ESP_EFUSE_KEY_PURPOSE_USER = 0,
    ESP_EFUSE_KEY_PURPOSE_RESERVED = 1,
    ESP_EFUSE_KEY_PURPOSE_XTS_AES_256_KEY_1 = 2,
    ESP_EFUSE_KEY_PURPOSE_XTS_AES_256_KEY_2 = 3,
    ESP_EFUSE_KEY_PURPOSE_XTS_AES_128_KEY = 4,
    ESP_EFUSE_KEY_PURPOSE_HMAC_DOWN_ALL = 5,
    ESP_EFUSE_KEY_PURPOSE_HMAC_DOWN_JTAG = 6,
    ESP_EFUSE_KEY_PURPOSE_HMAC_DOWN_DIGITAL_SIGNATURE = 7,
    ESP_EFUSE_KEY_PURPOSE_HMAC_UP = 8,
    ESP_EFUSE_KEY_PURPOSE_SECURE_BOOT_DIGEST0 = 9,
    ESP_EFUSE_KEY_PURPOSE_SECURE_BOOT_DIGEST1 = 10,
    ESP_EFUSE_KEY_PURPOSE_SECURE_BOOT_DIGEST2 = 11,
    ESP_EFUSE_KEY_PURPOSE_MAX
} esp_efuse_purpose_t;

// The purpose burned for a key block (EFUSE_BLK_KEY0 to EFUSE_BLK_KEY_MAX - 1).
esp_efuse_purpose_t esp_efuse_get_key_purpose(esp_efuse_block_t block);
// True when software can no longer read the key block.
bool esp_efuse_get_key_dis_read(esp_efuse_block_t block);

#ifdef __cplusplus
}
#endif
