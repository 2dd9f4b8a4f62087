// Stand-in for ESP-IDF's esp_err.h (components/esp_common/include): only what the example sketch
// and the other stubs use. Host compile check only (see ../README.md).
#pragma once
#include <stdint.h>

typedef int esp_err_t;
#define ESP_OK 0
#define ESP_FAIL -1
