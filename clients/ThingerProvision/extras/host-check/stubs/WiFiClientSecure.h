// Stand-in for arduino-esp32's WiFiClientSecure (2.x libraries/WiFiClientSecure; 3.x
// NetworkClientSecure, of which WiFiClientSecure is an alias): only what the example sketch
// calls. Host compile check only (see ../README.md).
#pragma once
#include "Arduino.h"

class WiFiClientSecure {
public:
  int connect(const char *host, uint16_t port);
  size_t write(const uint8_t *buf, size_t size);
  int available();
  int read();
  void stop();
  uint8_t connected();
  int lastError(char *buf, const size_t size);
  void setCACert(const char *rootCA);
};
