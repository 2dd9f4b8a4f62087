// Stand-in for the Arduino core for ESP32 (cores/esp32): only what the example sketch calls.
// Host compile check only (see ../README.md); nothing here is ever linked.
#pragma once

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// esp32-hal-misc.c
unsigned long millis();
void delay(uint32_t ms);
// esp32-hal-time.c
void configTime(long gmtOffset_sec, int daylightOffset_sec, const char *server1, const char *server2 = nullptr, const char *server3 = nullptr);
// esp_random.h (ESP-IDF), which Arduino.h reaches through esp_system.h on ESP-IDF 4
extern "C" uint32_t esp_random(void);

// HardwareSerial.h and Print.h
class HardwareSerial {
public:
  void begin(unsigned long baud, uint32_t config = 0x800001c, int8_t rxPin = -1, int8_t txPin = -1, bool invert = false, unsigned long timeout_ms = 20000UL, uint8_t rxfifo_full_thrhd = 112);
  size_t setRxBufferSize(size_t new_size);
  int available(void);
  int read(void);
  size_t println(const char[]);
  size_t printf(const char *format, ...) __attribute__((format(printf, 2, 3)));
};
extern HardwareSerial Serial;

// Esp.h
class EspClass {
public:
  uint64_t getEfuseMac();
};
extern EspClass ESP;
