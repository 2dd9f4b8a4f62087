// Runs the example sketch on the host, linked with mbedTLS and the C core, so that a test can
// play the factory station (test/clients/sketch-station.test.ts) and let the device provision
// against the running service (test/e2e/sketch-x509.test.ts): host definitions of the stub
// headers' calls, NVS as a file, the serial port fed from stdin. Host check only (see README.md);
// Arduino ignores extras/.
//
// usage: [SKETCH_STATION_SERVICE=127.0.0.1:PORT] sketch-station NVS_FILE MAC < commands
//   (MAC: 12 hex digits, as esptool read_mac prints them). Boots the sketch (setup()) with the
//   NVS entries of NVS_FILE (created if absent), feeds the command lines of stdin to its serial
//   port, prints what it answers, and writes NVS back; a second run with the same file is a
//   reboot. Without SKETCH_STATION_SERVICE, Wi-Fi never connects and the sketch never provisions.
//   With it, Wi-Fi is up, the TLS client is a plain TCP connection to that address (the local
//   stack speaks HTTP), and the sketch runs until it has provisioned or two minutes of its
//   time have passed (its waits cost no real time unless a connection is open); then `id`.
#include <Arduino.h>
#include <Preferences.h>
#include <ThingerESP32.h>
#include <WiFi.h>
#include <WiFiClientSecure.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
unsigned long virtual_ms = 0; // waits without a connection open, skipped
const char *service = nullptr; // "127.0.0.1:PORT", or no network
int socket_fd = -1;
bool peer_closed = false;

unsigned long real_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long)ts.tv_sec * 1000UL + (unsigned long)(ts.tv_nsec / 1000000);
}

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
unsigned long millis() { return real_ms() + virtual_ms; }
void delay(uint32_t ms) {
  if (socket_fd >= 0) {
    usleep(ms * 1000); // waiting for the service: real time
  } else {
    virtual_ms += ms;
  }
}
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

// WiFi.h, WiFiClientSecure.h: connected only with SKETCH_STATION_SERVICE, over plain TCP to it
// (one connection at a time, as the sketch makes them).
bool WiFiClass::mode(wifi_mode_t) { return true; }
wl_status_t WiFiClass::begin(const char *, const char *, int32_t, const uint8_t *, bool) { return WL_DISCONNECTED; }
wl_status_t WiFiClass::status() { return service != nullptr ? WL_CONNECTED : WL_DISCONNECTED; }
WiFiClass WiFi;
int WiFiClientSecure::connect(const char *, uint16_t) {
  const char *colon = service != nullptr ? strrchr(service, ':') : nullptr;
  if (colon == nullptr) {
    return 0;
  }
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)atoi(colon + 1));
  std::string host(service, (size_t)(colon - service));
  socket_fd = socket(AF_INET, SOCK_STREAM, 0);
  peer_closed = false;
  if (socket_fd < 0 || inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(socket_fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    stop();
    return 0;
  }
  return 1;
}
size_t WiFiClientSecure::write(const uint8_t *buf, size_t size) {
  size_t sent = 0;
  while (socket_fd >= 0 && sent < size) {
    ssize_t n = send(socket_fd, buf + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;
    }
    sent += (size_t)n;
  }
  return sent;
}
int WiFiClientSecure::available() {
  unsigned char byte;
  if (socket_fd < 0 || peer_closed) {
    return 0;
  }
  ssize_t n = recv(socket_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) {
    peer_closed = true;
  }
  return n > 0 ? 1 : 0;
}
int WiFiClientSecure::read() {
  unsigned char byte;
  return socket_fd >= 0 && recv(socket_fd, &byte, 1, 0) == 1 ? byte : -1;
}
void WiFiClientSecure::stop() {
  if (socket_fd >= 0) {
    close(socket_fd);
  }
  socket_fd = -1;
}
uint8_t WiFiClientSecure::connected() { return socket_fd >= 0 && !peer_closed ? 1 : 0; }
int WiFiClientSecure::lastError(char *buf, const size_t size) {
  return snprintf(buf, size, service != nullptr ? "connection refused" : "no network on the host");
}
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
  service = getenv("SKETCH_STATION_SERVICE");
  setup();
  while (serial_read < serial_input.size()) {
    loop();
  }
  if (service != nullptr) {
    const unsigned long until_ms = millis() + 120000UL;
    while (!g_have_credentials && (long)(millis() - until_ms) < 0) {
      loop();
    }
    run_command("id");
  }
  return save_nvs(argv[1]) ? 0 : 1;
}
