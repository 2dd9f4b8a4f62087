// Build-time settings of the sketch. Nothing here is a secret of the platform or of the fleet:
// the per-device key lives in NVS or in an eFuse key block, or the device's P-256 key and
// certificate in NVS (see README.md); the Thinger credentials come from the service.
#pragma once

// Wi-Fi of the site. A product would take these from a captive portal (ThingerESP32WebConfig)
// or SmartConfig instead of the firmware image.
#define WIFI_SSID "your-ssid"
#define WIFI_PASSWORD "your-wifi-password"

// The provisioning service: https://PROVISIONING_HOST PROVISIONING_BASE_PATH/v1/provision.
// PROVISIONING_BASE_PATH is "" for an HTTP API's default stage or a custom domain, "/dev" for a
// REST API stage named dev. Its root CA is in provisioning_ca.h.
#define PROVISIONING_HOST "abc123defg.execute-api.eu-west-1.amazonaws.com"
#define PROVISIONING_PORT 443
#define PROVISIONING_BASE_PATH ""
// The fleet this firmware's devices join (docs/fleets.md); "" for the service's default fleet.
#define PROVISIONING_FLEET ""
// The service's answer key, public: the 88 characters `thinger-provisioner answer-key show` prints
// for the stage. With it the device stores only answers the service signed for its own request;
// a party in the middle (a TLS proxy, a stolen server certificate) can then make it accept none.
// Required with PROVISIONING_X509, whose sealed answers anyone could make from the certificate.
// During a rotation (docs/operations.md), the other key in PROVISIONING_ANSWER_KEY_NEXT.
#define PROVISIONING_ANSWER_KEY ""
#define PROVISIONING_ANSWER_KEY_NEXT ""

// Where the device key lives. By default in NVS, sent once over the serial port at the factory
// (set-key). On an ESP32-S2, -S3, -C3, -C6 or -H2, define PROVISIONING_EFUSE_HMAC_KEY as the eFuse
// key block (HMAC_KEY0 to HMAC_KEY5 for BLOCK_KEY0 to BLOCK_KEY5) the factory burned the device
// key into, with purpose HMAC_UP and read protection (README.md): the chip's HMAC peripheral then
// signs with it, no software can read it, and every device runs the same image. The classic
// ESP32 and the ESP32-C2 have no HMAC peripheral: the build stops there.
// #define PROVISIONING_EFUSE_HMAC_KEY HMAC_KEY4
// With the eFuse key: the version of the fleet key the burned keys were derived from (1 to 999).
// #define PROVISIONING_EFUSE_KEY_VERSION 1

// An X.509 device, for a fleet with proof [x509] (docs/fleets.md) on a chip without key hardware
// (the classic ESP32, or any ESP32 whose factory wrote a P-256 key and certificate): define
// PROVISIONING_X509 and the device proves itself with its P-256 private key and its certificate
// (and an optional intermediate), written into NVS at the factory (set-x509-key, set-cert:
// README.md); the credential comes sealed to that key (ECDH). Excludes
// PROVISIONING_EFUSE_HMAC_KEY. The device ID is the certificate's subject common name; with
// PROVISIONING_X509_MAC_DEVICE_ID it is esp32_ and the MAC, as without a certificate, and the
// certificate must name it (as its common name, or as a DNS name for a fleet with deviceId: dns).
// #define PROVISIONING_X509
// #define PROVISIONING_X509_MAC_DEVICE_ID

// Only for a private Thinger.io instance: the thinger.io library picks its TLS root certificate
// at compile time from this define (community servers without it, Let's Encrypt with it). The
// host the service returns is still the one the device connects to; see README.md.
// #define THINGER_SERVER "acme.aws.thinger.io"
