// Runs the example sketch's factory commands on the host, linked with mbedTLS and the C core, so
// that a test can play the factory station (test/clients/sketch-station.test.ts): host
// definitions of the stub headers' calls, NVS as a file, no network (Wi-Fi never connects, so the
// sketch never provisions here). Host check only (see README.md); Arduino ignores extras/.
//
// usage: sketch-station NVS_FILE MAC < commands   (MAC: 12 hex digits, as esptool read_mac prints them)
//   boots the sketch (setup()) with the NVS entries of NVS_FILE (created if absent), feeds the
//   command lines of stdin to its serial port, prints what it answers, and writes NVS back.
//   A second run with the same file is a reboot.
#include <Arduino.h>
#include <Preferences.h>
#include <ThingerESP32.h>
#include <WiFi.h>
#include <WiFiClientSecure.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {
std::map<std::string, std::vector<unsigned char>> nvs;
std::string serial_input;
size_t serial_read = 0;
uint64_t efuse_mac = 0;
unsigned long now_ms = 0;

bool load_nvs(const char *path) {
  std::ifstream in(path);
  std::string key, hex;
  while (in >> key >> hex) {
    std::vector<unsigned char> value;
    for (size_t i = 1; i + 1 < hex.size(); i += 2) { // after the "-"
      value.push_back((unsigned char)std::stoul(hex.substr(i, 2), nullptr, 16));
    }
    nvs[key] = value;
  }
  return true;
}

bool save_nvs(const char *path) {
  static const char HEX_DIGITS[] = "0123456789abcdef";
  std::ofstream out(path, std::ios::trunc);
  for (const auto &entry : nvs) {
    out << entry.first << ' ' << '-'; // "-": an empty value still has a token
    for (unsigned char b : entry.second) {
      out << HEX_DIGITS[b >> 4] << HEX_DIGITS[b & 0x0F];
    }
    out << '\n';
  }
  return (bool)out;
}
} // namespace

// Arduino.h
unsigned long millis() { return now_ms += 10; }
void delay(uint32_t ms) { now_ms += ms; }
void configTime(long, int, const char *, const char *, const char *) {}
extern "C" uint32_t esp_random(void) { return (uint32_t)rand(); }
void HardwareSerial::begin(unsigned long, uint32_t, int8_t, int8_t, bool, unsigned long, uint8_t) {}
size_t HardwareSerial::setRxBufferSize(size_t new_size) { return new_size; }
int HardwareSerial::available(void) { return (int)(serial_input.size() - serial_read); }
int HardwareSerial::read(void) {
  return serial_read < serial_input.size() ? (unsigned char)serial_input[serial_read++] : -1;
}
size_t HardwareSerial::println(const char text[]) { return (size_t)printf("%s\n", text); }
size_t HardwareSerial::printf(const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vprintf(format, args);
  va_end(args);
  return n < 0 ? 0 : (size_t)n;
}
HardwareSerial Serial;
uint64_t EspClass::getEfuseMac() { return efuse_mac; }
EspClass ESP;

// Preferences.h: one namespace is all the sketch opens.
bool Preferences::begin(const char *, bool, const char *) { return true; }
bool Preferences::remove(const char *key) { return nvs.erase(key) > 0; }
size_t Preferences::putUInt(const char *key, uint32_t value) {
  return putBytes(key, &value, sizeof value);
}
size_t Preferences::putString(const char *key, const char *value) {
  return putBytes(key, value, strlen(value) + 1);
}
size_t Preferences::putBytes(const char *key, const void *value, size_t len) {
  const unsigned char *bytes = static_cast<const unsigned char *>(value);
  nvs[key] = std::vector<unsigned char>(bytes, bytes + len);
  return len;
}
bool Preferences::isKey(const char *key) { return nvs.count(key) > 0; }
uint32_t Preferences::getUInt(const char *key, uint32_t defaultValue) {
  uint32_t value = defaultValue;
  return getBytesLength(key) == sizeof value && getBytes(key, &value, sizeof value) ? value : defaultValue;
}
size_t Preferences::getString(const char *key, char *value, size_t maxLen) {
  size_t len = getBytesLength(key);
  if (len == 0 || len > maxLen) {
    return 0;
  }
  return getBytes(key, value, maxLen);
}
size_t Preferences::getBytesLength(const char *key) {
  auto entry = nvs.find(key);
  return entry == nvs.end() ? 0 : entry->second.size();
}
size_t Preferences::getBytes(const char *key, void *buf, size_t maxLen) {
  auto entry = nvs.find(key);
  if (entry == nvs.end() || entry->second.size() > maxLen) {
    return 0;
  }
  memcpy(buf, entry->second.data(), entry->second.size());
  return entry->second.size();
}

// WiFi.h, WiFiClientSecure.h: never connected.
bool WiFiClass::mode(wifi_mode_t) { return true; }
wl_status_t WiFiClass::begin(const char *, const char *, int32_t, const uint8_t *, bool) { return WL_DISCONNECTED; }
wl_status_t WiFiClass::status() { return WL_DISCONNECTED; }
WiFiClass WiFi;
int WiFiClientSecure::connect(const char *, uint16_t) { return 0; }
size_t WiFiClientSecure::write(const uint8_t *, size_t) { return 0; }
int WiFiClientSecure::available() { return 0; }
int WiFiClientSecure::read() { return -1; }
void WiFiClientSecure::stop() {}
uint8_t WiFiClientSecure::connected() { return 0; }
int WiFiClientSecure::lastError(char *buf, const size_t size) { return snprintf(buf, size, "no network on the host"); }
void WiFiClientSecure::setCACert(const char *) {}

// ThingerESP32.h
template <class T> pson &pson::operator=(T) { return *this; }
void thinger_resource::operator>>(std::function<void(protoson::pson &)>) {}
void ThingerClient::handle() {}
void ThingerClient::set_credentials(const char *, const char *, const char *) {}
void ThingerClient::set_host(const char *) {}
void ThingerClient::set_state_listener(std::function<void(THINGER_STATE)>) {}
thinger_resource &ThingerClient::operator[](const char *) {
  static thinger_resource resource;
  return resource;
}
ThingerESP32::ThingerESP32(const char *, const char *, const char *) {}
void ThingerESP32::add_wifi(const char *, const char *) {}

#include "thinger_provisioning.ino"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: sketch-station NVS_FILE MAC < commands\n");
    return 2;
  }
  load_nvs(argv[1]);
  uint64_t mac = std::stoull(argv[2], nullptr, 16);
  for (int i = 0; i < 6; i++) { // getEfuseMac() holds the first byte lowest
    efuse_mac |= ((mac >> (8 * (5 - i))) & 0xFF) << (8 * i);
  }
  serial_input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  setup();
  while (serial_read < serial_input.size()) {
    loop();
  }
  return save_nvs(argv[1]) ? 0 : 1;
}
