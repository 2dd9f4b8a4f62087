// Stand-in for arduino-esp32 libraries/WiFi/src (WiFi.h, WiFiGeneric.h, WiFiSTA.h, WiFiType.h):
// only what the example sketch calls. Host compile check only (see ../README.md).
#pragma once
#include "Arduino.h"

// esp_wifi_types.h (ESP-IDF) and WiFiType.h
typedef enum { WIFI_MODE_NULL = 0, WIFI_MODE_STA, WIFI_MODE_AP, WIFI_MODE_APSTA, WIFI_MODE_MAX } wifi_mode_t;
#define WIFI_STA WIFI_MODE_STA
typedef enum {
  WL_NO_SHIELD = 255,
  WL_IDLE_STATUS = 0,
  WL_NO_SSID_AVAIL = 1,
  WL_SCAN_COMPLETED = 2,
  WL_CONNECTED = 3,
  WL_CONNECT_FAILED = 4,
  WL_CONNECTION_LOST = 5,
  WL_DISCONNECTED = 6
} wl_status_t;

class WiFiClass {
public:
  static bool mode(wifi_mode_t);
  wl_status_t begin(const char *ssid, const char *passphrase = NULL, int32_t channel = 0, const uint8_t *bssid = NULL, bool connect = true);
  static wl_status_t status();
};
extern WiFiClass WiFi;
