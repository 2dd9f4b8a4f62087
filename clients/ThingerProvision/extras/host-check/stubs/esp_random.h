// Stand-in for ESP-IDF 5's esp_random.h (the sketch includes it when present). Host compile check only.
#pragma once
#include <stdint.h>

extern "C" uint32_t esp_random(void);
