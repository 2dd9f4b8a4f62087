// Stand-in for arduino-esp32 libraries/Preferences/src/Preferences.h: only what the example
// sketch calls. Host compile check only (see ../README.md).
#pragma once
#include "Arduino.h"

class Preferences {
public:
  bool begin(const char *name, bool readOnly = false, const char *partition_label = NULL);
  bool remove(const char *key);
  size_t putUInt(const char *key, uint32_t value);
  size_t putString(const char *key, const char *value);
  size_t putBytes(const char *key, const void *value, size_t len);
  bool isKey(const char *key);
  uint32_t getUInt(const char *key, uint32_t defaultValue = 0);
  size_t getString(const char *key, char *value, size_t maxLen);
  size_t getBytesLength(const char *key);
  size_t getBytes(const char *key, void *buf, size_t maxLen);
};
