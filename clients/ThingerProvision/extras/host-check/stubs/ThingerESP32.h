// Stand-in for the thinger.io Arduino library (src/ThingerESP32.h, ThingerWifi.h,
// ThingerClient.h, thinger/thinger_resource.hpp, pson.h): only what the example sketch calls.
// Host compile check only (see ../README.md).
#pragma once
#include "Arduino.h"
#include <functional>

#ifndef THINGER_SERVER
#define THINGER_SERVER "iot.thinger.io"
#endif

namespace protoson {
class pson {
public:
  template <class T> pson &operator=(T value);
};
}  // namespace protoson
using namespace protoson;

class thinger_resource {
public:
  void operator>>(std::function<void(protoson::pson &)> out_function);
};

class ThingerClient {
public:
  enum THINGER_STATE {
    NETWORK_CONNECTING,
    NETWORK_CONNECTED,
    NETWORK_CONNECT_ERROR,
    SOCKET_CONNECTING,
    SOCKET_CONNECTED,
    SOCKET_CONNECTION_ERROR,
    SOCKET_DISCONNECTED,
    SOCKET_TIMEOUT,
    SOCKET_ERROR,
    THINGER_AUTHENTICATING,
    THINGER_AUTHENTICATED,
    THINGER_AUTH_FAILED,
    THINGER_STOP_REQUEST
  };
  void handle();
  void set_credentials(const char *username, const char *device_id, const char *device_password);
  void set_host(const char *host);
  void set_state_listener(std::function<void(THINGER_STATE)> state_listener);
  thinger_resource &operator[](const char *res);
};

class ThingerESP32 : public ThingerClient {
public:
  ThingerESP32(const char *user, const char *device, const char *device_credential);
  void add_wifi(const char *ssid, const char *password);
};

#define outputValue(value) [](pson &out) { out = value; }
