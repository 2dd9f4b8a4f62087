// An ESP32 that provisions itself on Thinger.io through a thinger-provisioner service. It proves
// who it is with its own device key (in NVS, or burned into an eFuse key block that only the HMAC
// peripheral reads: PROVISIONING_EFUSE_HMAC_KEY), or with a P-256 key and its X.509 certificate
// (in NVS: PROVISIONING_X509), and receives its Thinger credentials; no account
// token and no fleet-wide secret is in this firmware. It provisions when it has no credentials or
// when Thinger keeps refusing them, with jittered exponential backoff.
// Settings: settings.h. Factory steps and design notes: README.md. Protocol: docs/firmware.md.

#include "settings.h" // first: it may define THINGER_SERVER for ThingerESP32.h
#ifdef THINGER_SERVER
#define PRIVATE_THINGER_SERVER THINGER_SERVER // the library defines a default of its own
#endif
#include "provisioning_ca.h"
#include <thinger_provision.h>

#include <Preferences.h>
#include <WiFi.h>
#if __has_include(<esp_random.h>)
#include <esp_random.h> // ESP-IDF 5; ESP-IDF 4 declares esp_random() in esp_system.h
#endif
#include <WiFiClientSecure.h>
#include <ThingerESP32.h>
#if defined(PROVISIONING_X509) && defined(PROVISIONING_EFUSE_HMAC_KEY)
#error "PROVISIONING_X509 and PROVISIONING_EFUSE_HMAC_KEY exclude each other: an X.509 device signs with its P-256 key, an eFuse one with its HMAC key; keep one of them in settings.h"
#endif
#if defined(PROVISIONING_X509_MAC_DEVICE_ID) && !defined(PROVISIONING_X509)
#error "PROVISIONING_X509_MAC_DEVICE_ID is an option of PROVISIONING_X509: define both, or neither"
#endif
#ifdef PROVISIONING_X509
#include <mbedtls/asn1.h>
#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#endif
#ifdef PROVISIONING_EFUSE_HMAC_KEY
#include <soc/soc_caps.h>
#if !SOC_HMAC_SUPPORTED
#error "PROVISIONING_EFUSE_HMAC_KEY needs the HMAC peripheral (ESP32-S2, -S3, -C3, -C6, -H2); this chip has none (classic ESP32, ESP32-C2): remove the define from settings.h to keep the device key in NVS"
#endif
#include <esp_efuse.h>
#include <esp_hmac.h>
#endif
#include <strings.h>
#include <sys/time.h>
#include <time.h>

// Settings files from before answer signatures pin no answer key.
#ifndef PROVISIONING_ANSWER_KEY
#define PROVISIONING_ANSWER_KEY ""
#endif
#ifndef PROVISIONING_ANSWER_KEY_NEXT
#define PROVISIONING_ANSWER_KEY_NEXT ""
#endif
static_assert(sizeof PROVISIONING_ANSWER_KEY == 1 ||
                  sizeof PROVISIONING_ANSWER_KEY == TPROV_ANSWER_KEY_B64_LEN + 1,
              "PROVISIONING_ANSWER_KEY is \"\" or the 88 characters `thinger-provisioner answer-key show` prints");
static_assert(sizeof PROVISIONING_ANSWER_KEY_NEXT == 1 ||
                  (sizeof PROVISIONING_ANSWER_KEY_NEXT == TPROV_ANSWER_KEY_B64_LEN + 1 &&
                   sizeof PROVISIONING_ANSWER_KEY == TPROV_ANSWER_KEY_B64_LEN + 1),
              "PROVISIONING_ANSWER_KEY_NEXT is \"\" or, beside PROVISIONING_ANSWER_KEY, the 88 characters of the other key");
#ifdef PROVISIONING_X509
// Its answers are sealed to the certificate's public key: without a pinned answer key anyone in the
// middle could make one, and the core refuses them (TPROV_ERR_ANSWER_KEY_REQUIRED) after the
// service has already replaced the credential.
static_assert(sizeof PROVISIONING_ANSWER_KEY == TPROV_ANSWER_KEY_B64_LEN + 1,
              "PROVISIONING_X509 needs PROVISIONING_ANSWER_KEY in settings.h: the 88 characters `thinger-provisioner answer-key show` prints");
#endif

// A fleet powered on together spreads its first requests over this window.
static const uint32_t FIRST_ATTEMPT_SPREAD_MS = 10000;
// Transient failures (network, 429, 503): full-jitter backoff from 5 s up to 15 min.
static const uint32_t RETRY_BASE_MS = 5000;
static const uint32_t RETRY_CAP_MS = 15UL * 60UL * 1000UL;
// Refusals (403 device_not_allowed, 401 invalid_signature, ...) are not retried by the backoff;
// the device asks again after hours so that an operator's fix needs no site visit.
static const uint32_t REFUSED_PARK_MS = 6UL * 60UL * 60UL * 1000UL;
static const uint32_t REFUSED_PARK_JITTER_MS = 30UL * 60UL * 1000UL;
// Thinger refusing the stored credential this many times in a row means it was replaced or
// deleted: provision again, with a backoff of its own from 1 min up to 1 h.
static const uint8_t AUTH_FAILURES_BEFORE_REPROVISION = 3;
static const uint32_t REPROVISION_BASE_MS = 60000;
static const uint32_t REPROVISION_CAP_MS = 60UL * 60UL * 1000UL;
static const uint32_t HTTP_TIMEOUT_MS = 15000;
static const uint32_t SNTP_WAIT_MS = 10000;
static const time_t MIN_VALID_UNIX_TIME = 1700000000; // 2023-11-14: earlier means no clock yet

static const char NVS_NAMESPACE[] = "tprov";
static const char NVS_DEVICE_KEY[] = "device_key";
static const char NVS_KEY_VERSION[] = "key_version";
static const char NVS_DEVICE[] = "device";
static const char NVS_USERNAME[] = "username";
static const char NVS_CREDENTIAL[] = "credential";
static const char NVS_HOST[] = "host";
static const char NVS_X509_KEY[] = "x509_key";     // the P-256 private scalar, 32 bytes
static const char NVS_X509_CERT[] = "x509_cert";   // the device certificate, DER
static const char NVS_X509_CHAIN[] = "x509_chain"; // its intermediate CA certificate, DER, if any

// The request is sent from one static buffer: the head is written just before the body, so that
// both leave in one write (one TLS record) without copying the body. An X.509 body is up to 4 KB:
// too much for the loop task's stack.
static const size_t REQUEST_HEAD_MAX_LEN = 384;
#ifdef PROVISIONING_X509
static const size_t REQUEST_BODY_MAX_LEN = TPROV_X509_REQUEST_BODY_MAX_LEN;
// The certificate and its intermediate together, DER: with their base64 and the other fields the
// request stays under the service's 4096 bytes (set-cert checks it with a trial request).
static const size_t X509_DER_MAX_LEN = 2816;
// The longest command line: "set-cert CERT CHAIN", both in base64, with room to spare so that
// certificates a little too large are answered certificate_too_large rather than line_too_long.
static const size_t SERIAL_LINE_MAX_LEN = 4095;
static_assert(SERIAL_LINE_MAX_LEN >= 16 + 4 * ((X509_DER_MAX_LEN + 2) / 3) + 8, "a set-cert line fits");
#else
static const size_t REQUEST_BODY_MAX_LEN = TPROV_REQUEST_BODY_MAX_LEN;
static const size_t SERIAL_LINE_MAX_LEN = 95;
#endif

#ifdef PROVISIONING_EFUSE_HMAC_KEY
#ifndef PROVISIONING_EFUSE_KEY_VERSION
#define PROVISIONING_EFUSE_KEY_VERSION 1
#endif
static_assert(PROVISIONING_EFUSE_HMAC_KEY >= HMAC_KEY0 && PROVISIONING_EFUSE_HMAC_KEY <= HMAC_KEY5,
              "PROVISIONING_EFUSE_HMAC_KEY is one of HMAC_KEY0 to HMAC_KEY5");
static_assert(PROVISIONING_EFUSE_KEY_VERSION >= 1 && PROVISIONING_EFUSE_KEY_VERSION <= 999,
              "PROVISIONING_EFUSE_KEY_VERSION is 1 to 999");
static const char KEY_FIX[] = "burn the device key into the eFuse block with purpose HMAC_UP, read-protected (README.md)";
static const char COMMANDS[] = "id | reprovision";
#elif defined(PROVISIONING_X509)
static const char KEY_FIX[] = "write the key and certificate at the factory (send: set-x509-key KEY, then set-cert CERT [CHAIN])";
static const char COMMANDS[] = "id | set-x509-key KEY | set-cert CERT [CHAIN] | reprovision";
#else
static const char KEY_FIX[] = "re-key at the factory (send: set-key KEY)";
static const char COMMANDS[] = "id | set-key KEY [VERSION] | reprovision";
#endif

// What one HTTPS exchange gave; the parsed body is in g_response.
struct Exchange {
  long http_status; // 0: no HTTP answer
  tprov_status_t parse_status;
  bool has_header_retry_after;
  uint32_t header_retry_after_secs;
};

static Preferences prefs;
static char g_device_id[TPROV_DEVICE_ID_MAX_LEN + 1];
static char g_username[TPROV_USERNAME_MAX_LEN + 1];
static char g_credential[TPROV_CREDENTIAL_MAX_LEN + 1];
static char g_host[TPROV_HOST_MAX_LEN + 1];
static bool g_have_credentials = false;
static uint32_t g_next_attempt_ms = 0;
static uint32_t g_failures = 0;      // consecutive transient failures
static uint32_t g_reprovisions = 0;  // since Thinger last accepted a credential
static uint8_t g_auth_failures = 0;   // refused logins in a row (set from thing.handle())
static uint32_t g_wifi_up_since_ms = 0;
static char g_response_body[TPROV_RESPONSE_MAX_LEN];
static tprov_response_t g_response;
// The pinned answer keys, decoded and checked once at start (load_answer_keys).
static unsigned char g_answer_key_points[TPROV_ANSWER_KEYS_MAX][TPROV_P256_POINT_LEN];
static tprov_answer_keys_t g_answer_keys;
static bool g_answer_keys_valid = false;
static char g_request[REQUEST_HEAD_MAX_LEN + REQUEST_BODY_MAX_LEN + 1];
static char *const g_request_body = g_request + REQUEST_HEAD_MAX_LEN;

// The client reads these buffers when it connects, so new credentials need no new object.
ThingerESP32 thing(g_username, g_device_id, g_credential);

#if !defined(PROVISIONING_X509) || defined(PROVISIONING_X509_MAC_DEVICE_ID)
// esptool's read_mac order, lower-case, so the factory can derive the key from the label.
static void make_device_id(char out[TPROV_DEVICE_ID_MAX_LEN + 1]) {
  static const char HEX_DIGITS[] = "0123456789abcdef";
  uint64_t mac = ESP.getEfuseMac();
  size_t len = strlen("esp32_");

  memcpy(out, "esp32_", len);
  for (int i = 0; i < 6; i++) {
    uint8_t b = (uint8_t)(mac >> (8 * i));
    out[len++] = HEX_DIGITS[b >> 4];
    out[len++] = HEX_DIGITS[b & 0x0F];
  }
  out[len] = '\0';
}
#endif

static bool read_nvs_string(const char *key, char *out, size_t size) {
  out[0] = '\0';
  return prefs.isKey(key) && prefs.getString(key, out, size) > 0 && out[0] != '\0';
}

static bool g_have_key = false; // mirrors NVS or the eFuse block, read once at boot
static const char *g_key_state = "absent"; // what `id` says: present, absent; efuse, readable

static bool has_device_key() {
  return g_have_key;
}

#ifdef PROVISIONING_EFUSE_HMAC_KEY
// The HMAC peripheral computes with the burned key: no software, this sketch included, reads it.
static int efuse_hmac(void *ctx, const unsigned char *message, size_t message_len,
                      unsigned char mac[32]) {
  (void)ctx;
  return esp_hmac_calculate(PROVISIONING_EFUSE_HMAC_KEY, message, message_len, mac) == ESP_OK ? 0 : -1;
}

// "efuse": burned for the HMAC peripheral and read-protected. "readable": burned, but software
// can read it back, so a dumped chip gives the key away: refused, as this option promises a key
// no software holds. "absent": no key for the HMAC peripheral in that block.
static const char *read_efuse_key_state() {
  esp_efuse_block_t block = static_cast<esp_efuse_block_t>(
      static_cast<int>(EFUSE_BLK_KEY0) + static_cast<int>(PROVISIONING_EFUSE_HMAC_KEY));
  if (esp_efuse_get_key_purpose(block) != ESP_EFUSE_KEY_PURPOSE_HMAC_UP) {
    return "absent";
  }
  return esp_efuse_get_key_dis_read(block) ? "efuse" : "readable";
}
#endif

#ifdef PROVISIONING_X509
static void load_credentials();

// The certificate and its intermediate, DER, back to back, as read from NVS at boot or taken by
// set-cert. They are public: every request carries them.
static unsigned char g_x509_der[X509_DER_MAX_LEN];
static size_t g_cert_len = 0;  // 0: no usable certificate
static size_t g_chain_len = 0; // 0: no intermediate
static const char *g_cert_state = "absent"; // what `id` says: present, absent, or what is wrong
static mbedtls_entropy_context g_entropy;
static mbedtls_ctr_drbg_context g_drbg;
static bool g_drbg_seeded = false;

// CTR-DRBG seeded from mbedTLS's entropy source, which ESP-IDF feeds from the hardware RNG (true
// random once the radio is on: setup() starts Wi-Fi first). It blinds the scalar multiplications;
// the signatures themselves are deterministic (RFC 6979) where mbedTLS has it.
static bool seed_drbg() {
  static const unsigned char PERSONALIZATION[] = "thinger-provisioner device";
  if (!g_drbg_seeded) {
    mbedtls_entropy_init(&g_entropy);
    mbedtls_ctr_drbg_init(&g_drbg);
    g_drbg_seeded = mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_entropy,
                                          PERSONALIZATION, sizeof PERSONALIZATION - 1) == 0;
    if (!g_drbg_seeded) {
      mbedtls_ctr_drbg_free(&g_drbg);
      mbedtls_entropy_free(&g_entropy);
    }
  }
  return g_drbg_seeded;
}

static bool read_x509_key(unsigned char d[TPROV_P256_SCALAR_LEN]) {
  return prefs.isKey(NVS_X509_KEY) && prefs.getBytesLength(NVS_X509_KEY) == TPROV_P256_SCALAR_LEN &&
         prefs.getBytes(NVS_X509_KEY, d, TPROV_P256_SCALAR_LEN) == TPROV_P256_SCALAR_LEN;
}

// TPROV_ERR_KEY: d is 0 or not below the curve order. TPROV_ERR_CRYPTO: no random generator.
static tprov_status_t open_p256_key(tprov_key_t &key, tprov_p256_key_t &storage,
                                    const unsigned char d[TPROV_P256_SCALAR_LEN]) {
  if (!seed_drbg()) {
    return TPROV_ERR_CRYPTO;
  }
  return tprov_key_from_p256(&key, &storage, d, mbedtls_ctr_drbg_random, &g_drbg);
}

static tprov_certificate_t x509_certificate(size_t cert_len, size_t chain_len) {
  tprov_certificate_t certificate = { g_x509_der, cert_len, nullptr, 0 };
  if (chain_len > 0) {
    certificate.chain_der = g_x509_der + cert_len;
    certificate.chain_der_len = chain_len;
  }
  return certificate;
}

// True when the certificate's public key is d·G on P-256: the certificate is this key's, so a key
// and a certificate of two different devices are caught at the factory, not by the service.
static bool certificate_has_key(const mbedtls_x509_crt &crt, const unsigned char d[TPROV_P256_SCALAR_LEN]) {
  unsigned char written[TPROV_P256_POINT_LEN + 16];
  unsigned char computed[TPROV_P256_POINT_LEN];
  unsigned char *p = written + sizeof written;
  size_t computed_len = 0;
  mbedtls_ecp_group grp;
  mbedtls_ecp_point q;
  mbedtls_mpi m;

  if (mbedtls_pk_get_type(&crt.pk) != MBEDTLS_PK_ECKEY ||
      mbedtls_pk_write_pubkey(&p, written, &crt.pk) != TPROV_P256_POINT_LEN || !seed_drbg()) {
    return false; // RSA, another curve, or no random generator
  }
  mbedtls_ecp_group_init(&grp);
  mbedtls_ecp_point_init(&q);
  mbedtls_mpi_init(&m);
  bool same = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
              mbedtls_mpi_read_binary(&m, d, TPROV_P256_SCALAR_LEN) == 0 &&
              mbedtls_ecp_mul(&grp, &q, &m, &grp.G, mbedtls_ctr_drbg_random, &g_drbg) == 0 &&
              mbedtls_ecp_point_write_binary(&grp, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &computed_len,
                                             computed, sizeof computed) == 0 &&
              computed_len == sizeof computed && memcmp(p, computed, sizeof computed) == 0;
  mbedtls_mpi_free(&m); // mbedTLS wipes the scalar's copy
  mbedtls_ecp_point_free(&q);
  mbedtls_ecp_group_free(&grp);
  return same;
}

// The subject's common name, when there is exactly one and it is a valid device ID (the service
// reads it the same way: x509.deviceId cn, docs/protocol.md).
static bool certificate_cn(const mbedtls_x509_crt &crt, char out[TPROV_DEVICE_ID_MAX_LEN + 1]) {
  const mbedtls_x509_name *cn = nullptr;
  for (const mbedtls_x509_name *name = &crt.subject; name != nullptr; name = name->next) {
    if (name->oid.p != nullptr && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) == 0) {
      if (cn != nullptr) {
        return false;
      }
      cn = name;
    }
  }
  if (cn == nullptr || cn->val.len == 0 || cn->val.len > TPROV_DEVICE_ID_MAX_LEN) {
    return false;
  }
  memcpy(out, cn->val.p, cn->val.len);
  out[cn->val.len] = '\0';
  return strlen(out) == cn->val.len && tprov_validate_device_id(out) == TPROV_OK;
}

#ifdef PROVISIONING_X509_MAC_DEVICE_ID
// The certificate names the device as its common name or as one of its DNS names (x509.deviceId
// cn or dns): otherwise the service would answer certificate_device_mismatch.
static bool certificate_names(const mbedtls_x509_crt &crt, const char *device) {
  char cn[TPROV_DEVICE_ID_MAX_LEN + 1];
  if (certificate_cn(crt, cn) && strcmp(cn, device) == 0) {
    return true;
  }
  for (const mbedtls_x509_sequence *san = &crt.subject_alt_names; san != nullptr && san->buf.p != nullptr;
       san = san->next) {
    if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME) &&
        san->buf.len == strlen(device) && memcmp(san->buf.p, device, san->buf.len) == 0) {
      return true;
    }
  }
  return false;
}
#endif

// Checks a certificate and its intermediate (chain_len 0: none) against the device's key, and
// writes the device ID they give. Returns nullptr when they are usable, else the code that `id`
// and set-cert report.
static const char *check_x509(size_t cert_len, size_t chain_len,
                              const unsigned char d[TPROV_P256_SCALAR_LEN],
                              char device[TPROV_DEVICE_ID_MAX_LEN + 1]) {
  mbedtls_x509_crt crt;
  mbedtls_x509_crt issuer;
  const char *problem = nullptr;

  mbedtls_x509_crt_init(&crt);
  mbedtls_x509_crt_init(&issuer);
  if (cert_len == 0 || mbedtls_x509_crt_parse_der(&crt, g_x509_der, cert_len) != 0) {
    problem = "invalid_certificate";
  } else if (chain_len > 0 &&
             mbedtls_x509_crt_parse_der(&issuer, g_x509_der + cert_len, chain_len) != 0) {
    problem = "invalid_chain";
  } else if (chain_len > 0 && (crt.issuer_raw.len != issuer.subject_raw.len ||
                               memcmp(crt.issuer_raw.p, issuer.subject_raw.p, crt.issuer_raw.len) != 0)) {
    problem = "chain_mismatch"; // the intermediate did not issue this certificate
  } else if (!certificate_has_key(crt, d)) {
    problem = "key_mismatch";
  } else {
#ifdef PROVISIONING_X509_MAC_DEVICE_ID
    make_device_id(device);
    if (!certificate_names(crt, device)) {
      problem = "certificate_device_mismatch";
    }
#else
    if (!certificate_cn(crt, device)) {
      problem = "certificate_device_id"; // no common name, several, or not a Thinger device ID
    }
#endif
  }
  mbedtls_x509_crt_free(&crt);
  mbedtls_x509_crt_free(&issuer);
  return problem;
}

// A trial request with the longest timestamp: a certificate too large for the service's 4096
// bytes is refused at the factory rather than found in the field.
static const char *check_request_fits(const char *device, size_t cert_len, size_t chain_len,
                                      const unsigned char d[TPROV_P256_SCALAR_LEN]) {
  tprov_key_t key;
  tprov_p256_key_t storage;
  tprov_certificate_t certificate = x509_certificate(cert_len, chain_len);
  tprov_request_options_t options = { PROVISIONING_FLEET, 0, true, nullptr };
  size_t body_len = 0;

  tprov_status_t status = open_p256_key(key, storage, d);
  if (status == TPROV_OK) {
    status = tprov_build_request(device, UINT64_MAX, &key, &options, &certificate, g_request_body,
                                 REQUEST_BODY_MAX_LEN + 1, &body_len);
  }
  tprov_memzero(&storage, sizeof storage);
  tprov_memzero(g_request, sizeof g_request);
  switch (status) {
  case TPROV_OK:
    return nullptr;
  case TPROV_ERR_BUFFER_TOO_SMALL:
    return "certificate_too_large";
  case TPROV_ERR_REQUEST_OPTION:
    return "invalid_fleet_setting"; // PROVISIONING_FLEET in settings.h breaks the protocol's rules
  default:
    return "crypto_failed";
  }
}

// Reads the key and the certificates from NVS and checks them together: sets g_device_id (the
// certificate's common name, or the MAC's ID), g_cert_state, g_key_state and g_have_key.
static void load_x509_identity() {
  unsigned char d[TPROV_P256_SCALAR_LEN];
  char device[TPROV_DEVICE_ID_MAX_LEN + 1] = "";
  bool have_key = read_x509_key(d);
  size_t cert_len = prefs.isKey(NVS_X509_CERT) ? prefs.getBytesLength(NVS_X509_CERT) : 0;
  size_t chain_len = prefs.isKey(NVS_X509_CHAIN) ? prefs.getBytesLength(NVS_X509_CHAIN) : 0;

  g_cert_len = 0;
  g_chain_len = 0;
#ifdef PROVISIONING_X509_MAC_DEVICE_ID
  make_device_id(g_device_id);
#else
  g_device_id[0] = '\0'; // no certificate, no ID
#endif
  g_key_state = have_key ? "present" : prefs.isKey(NVS_X509_KEY) ? "unreadable" : "absent";
  if (cert_len == 0) {
    g_cert_state = "absent";
  } else if (cert_len + chain_len > sizeof g_x509_der ||
             prefs.getBytes(NVS_X509_CERT, g_x509_der, cert_len) != cert_len ||
             (chain_len > 0 && prefs.getBytes(NVS_X509_CHAIN, g_x509_der + cert_len, chain_len) != chain_len)) {
    g_cert_state = "unreadable";
  } else if (!have_key) {
    g_cert_state = "present"; // checked against the key once there is one
  } else {
    const char *problem = check_x509(cert_len, chain_len, d, device);
    g_cert_state = problem != nullptr ? problem : "present";
    if (problem == nullptr) {
      g_cert_len = cert_len;
      g_chain_len = chain_len;
      memcpy(g_device_id, device, sizeof device);
    }
  }
  g_have_key = have_key && g_cert_len > 0;
  tprov_memzero(d, sizeof d);
}

// "set-x509-key KEY": the private scalar, 32 bytes in base64. Write-once, as set-key: re-keying
// takes an erased flash.
static void set_x509_key(const char *key_b64) {
  unsigned char d[TPROV_P256_SCALAR_LEN + 1];
  size_t d_len = 0;
  tprov_key_t key;
  tprov_p256_key_t storage;
  tprov_status_t status = TPROV_ERR_KEY;

  if (prefs.isKey(NVS_X509_KEY)) {
    Serial.println("error=key_already_set");
    return;
  }
  if (mbedtls_base64_decode(d, sizeof d, &d_len, (const unsigned char *)key_b64, strlen(key_b64)) == 0 &&
      d_len == TPROV_P256_SCALAR_LEN) {
    status = open_p256_key(key, storage, d);
  }
  if (status == TPROV_ERR_KEY) {
    Serial.println("error=invalid_key");
  } else if (status != TPROV_OK) {
    Serial.printf("error=crypto_failed (%s)\n", tprov_status_name(status));
  } else if (prefs.putBytes(NVS_X509_KEY, d, TPROV_P256_SCALAR_LEN) != TPROV_P256_SCALAR_LEN) {
    Serial.println("error=nvs_write_failed");
  } else {
    load_x509_identity(); // a certificate written before the key is checked now
    Serial.println("ok");
  }
  tprov_memzero(d, sizeof d);
  tprov_memzero(&storage, sizeof storage);
}

// Decodes base64 text into out; the code to report, or nullptr.
static const char *decode_der(const char *text, size_t text_len, unsigned char *out, size_t size,
                              size_t &len, const char *too_large, const char *invalid) {
  int ret = mbedtls_base64_decode(out, size, &len, (const unsigned char *)text, text_len);
  if (ret == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL) {
    return too_large;
  }
  return ret == 0 ? nullptr : invalid;
}

// "set-cert CERT [CHAIN]": the device certificate and its intermediate, DER in base64. Taken only
// for the stored key, with a usable device ID, and small enough for a request; it replaces the
// stored ones (a renewed certificate for the same key), never the key.
static void set_certificate(const char *args) {
  const char *space = strchr(args, ' ');
  size_t cert_b64_len = space != nullptr ? (size_t)(space - args) : strlen(args);
  const char *chain_b64 = space != nullptr ? space + 1 : "";
  size_t cert_len = 0;
  size_t chain_len = 0;
  unsigned char d[TPROV_P256_SCALAR_LEN];
  char device[TPROV_DEVICE_ID_MAX_LEN + 1];
  const char *problem = nullptr;

  if (!read_x509_key(d)) {
    problem = "no_key"; // set-x509-key first
  } else {
    problem = decode_der(args, cert_b64_len, g_x509_der, sizeof g_x509_der, cert_len,
                         "certificate_too_large", "invalid_certificate");
  }
  if (problem == nullptr) {
    problem = decode_der(chain_b64, strlen(chain_b64), g_x509_der + cert_len,
                         sizeof g_x509_der - cert_len, chain_len, "certificate_too_large",
                         "invalid_chain");
  }
  if (problem == nullptr) {
    problem = check_x509(cert_len, chain_len, d, device);
  }
  if (problem == nullptr) {
    problem = check_request_fits(device, cert_len, chain_len, d);
  }
  if (problem == nullptr) {
    prefs.remove(NVS_X509_CHAIN);
    if (prefs.putBytes(NVS_X509_CERT, g_x509_der, cert_len) != cert_len ||
        (chain_len > 0 && prefs.putBytes(NVS_X509_CHAIN, g_x509_der + cert_len, chain_len) != chain_len)) {
      problem = "nvs_write_failed";
    }
  }
  tprov_memzero(d, sizeof d);
  load_x509_identity(); // what NVS holds now, whether or not this one was taken
  load_credentials();   // a certificate of another device ID drops the stored credentials
  if (problem != nullptr) {
    Serial.printf("error=%s\n", problem);
  } else {
    Serial.println("ok");
  }
}
#endif

#ifdef PROVISIONING_X509
typedef tprov_p256_key_t KeyStorage;
#else
typedef tprov_hmac_key_t KeyStorage;
#endif

// The device key as the core uses it. From NVS, decoded into storage (wipe it after); from
// eFuse, a handle on the HMAC peripheral. False when the stored key is unusable.
static bool open_device_key(tprov_key_t &key, KeyStorage &storage, uint32_t &key_version) {
#if defined(PROVISIONING_X509)
  unsigned char d[TPROV_P256_SCALAR_LEN];
  bool ok = read_x509_key(d) && open_p256_key(key, storage, d) == TPROV_OK;
  tprov_memzero(d, sizeof d);
  key_version = 0; // X.509 requests carry no key version
  return ok;
#elif defined(PROVISIONING_EFUSE_HMAC_KEY)
  (void)storage;
  key = tprov_key_t();
  key.type = TPROV_KEY_HMAC;
  key.hmac = efuse_hmac;
  key_version = PROVISIONING_EFUSE_KEY_VERSION;
  return true;
#else
  char key_b64[TPROV_DEVICE_KEY_B64_LEN + 1];
  bool ok = read_nvs_string(NVS_DEVICE_KEY, key_b64, sizeof key_b64) &&
            tprov_key_from_device_key(&key, &storage, key_b64) == TPROV_OK;
  tprov_memzero(key_b64, sizeof key_b64);
  key_version = prefs.getUInt(NVS_KEY_VERSION, 1);
  return ok;
#endif
}

static void schedule_attempt(uint32_t delay_ms) {
  g_next_attempt_ms = millis() + delay_ms;
  Serial.printf("[PROVISION] next attempt in %lu s\n", (unsigned long)(delay_ms / 1000));
}

static void load_credentials() {
  char device[TPROV_DEVICE_ID_MAX_LEN + 1];

  g_have_credentials = read_nvs_string(NVS_DEVICE, device, sizeof device) &&
                       strcmp(device, g_device_id) == 0 &&
                       read_nvs_string(NVS_USERNAME, g_username, sizeof g_username) &&
                       read_nvs_string(NVS_CREDENTIAL, g_credential, sizeof g_credential) &&
                       read_nvs_string(NVS_HOST, g_host, sizeof g_host);
  if (!g_have_credentials) {
    tprov_memzero(g_credential, sizeof g_credential);
  }
}

static_assert(sizeof g_username == sizeof g_response.username, "same bounds as the parser");
static_assert(sizeof g_credential == sizeof g_response.credential, "same bounds as the parser");
static_assert(sizeof g_host == sizeof g_response.host, "same bounds as the parser");

static void store_credentials(const tprov_response_t &r) {
  memcpy(g_username, r.username, sizeof g_username);
  memcpy(g_credential, r.credential, sizeof g_credential);
  memcpy(g_host, r.host, sizeof g_host);
  bool saved = prefs.putString(NVS_DEVICE, r.device) > 0 &&
               prefs.putString(NVS_USERNAME, r.username) > 0 &&
               prefs.putString(NVS_CREDENTIAL, r.credential) > 0 &&
               prefs.putString(NVS_HOST, r.host) > 0;
  if (!saved) {
    Serial.println("[PROVISION] warning: NVS write failed; credentials kept until reboot");
  }
  thing.set_credentials(g_username, g_device_id, g_credential);
  thing.set_host(g_host);
#ifdef PRIVATE_THINGER_SERVER
  if (strcmp(g_host, PRIVATE_THINGER_SERVER) != 0) {
    Serial.printf("[PROVISION] warning: host %s is not THINGER_SERVER %s; the TLS root compiled "
                  "in may not match it\n", g_host, PRIVATE_THINGER_SERVER);
  }
#endif
  g_have_credentials = true;
}

static void forget_credentials() {
  prefs.remove(NVS_CREDENTIAL);
  g_have_credentials = false;
  tprov_memzero(g_credential, sizeof g_credential);
}

// Reads one byte before deadline_ms, or returns -1 at the end of the stream or on timeout.
static int read_byte(WiFiClientSecure &client, uint32_t deadline_ms) {
  while ((int32_t)(millis() - deadline_ms) < 0) {
    if (client.available() > 0) {
      return client.read();
    }
    if (!client.connected()) {
      return -1;
    }
    delay(1);
  }
  return -1;
}

// Reads a header line without its CR LF; a longer line is cut to fit. Returns its length or -1.
static int read_line(WiFiClientSecure &client, uint32_t deadline_ms, char *line, size_t size) {
  size_t len = 0;

  for (;;) {
    int c = read_byte(client, deadline_ms);
    if (c < 0) {
      return -1;
    }
    if (c == '\n') {
      break;
    }
    if (c != '\r' && len + 1 < size) {
      line[len++] = (char)c;
    }
  }
  line[len] = '\0';
  return (int)len;
}

static bool parse_header_number(const char *text, uint32_t &out) {
  uint64_t value = 0;

  while (*text == ' ') {
    text++;
  }
  if (*text < '0' || *text > '9') {
    return false; // an HTTP-date Retry-After is ignored: the backoff applies
  }
  for (; *text >= '0' && *text <= '9'; text++) {
    value = value * 10 + (uint64_t)(*text - '0');
    if (value > UINT32_MAX) {
      return false;
    }
  }
  out = (uint32_t)value;
  return true;
}

// PROVISIONING_ANSWER_KEY (and _NEXT) as points on P-256; false when one is not. Their text is
// checked here, at start: a typo must not become a device that refuses every answer unexplained.
static bool load_answer_keys() {
  const char *const texts[TPROV_ANSWER_KEYS_MAX] = { PROVISIONING_ANSWER_KEY, PROVISIONING_ANSWER_KEY_NEXT };

  g_answer_keys = tprov_answer_keys_t();
  for (size_t i = 0; i < TPROV_ANSWER_KEYS_MAX; i++) {
    if (texts[i][0] == '\0') {
      continue;
    }
    if (tprov_answer_key_from_base64(texts[i], g_answer_key_points[g_answer_keys.count]) != TPROV_OK) {
      g_answer_keys.count = 0;
      return false;
    }
    g_answer_keys.keys[g_answer_keys.count] = g_answer_key_points[g_answer_keys.count];
    g_answer_keys.count++;
  }
  return true;
}

// POSTs the body_len bytes at g_request_body to the service and parses the answer into
// g_response. HTTP/1.1 with Connection: close; the body is read up to Content-Length or the end of the stream (a chunked
// answer is refused: the service sends Content-Length).
// The key opens the sealed credential of the answer (protocol v2, docs/protocol.md); timestamp
// is the one the request was signed with; with pinned answer keys the answer must be signed for
// the request whose SHA-256 is request_hash.
static void https_post(size_t body_len, uint64_t timestamp, const tprov_key_t &key,
                       const unsigned char request_hash[TPROV_REQUEST_HASH_LEN], Exchange &ex) {
  WiFiClientSecure client;
  char head[REQUEST_HEAD_MAX_LEN + 1];
  char line[128];

  ex = Exchange();
  ex.parse_status = TPROV_ERR_RESPONSE_EMPTY;
  client.setCACert(PROVISIONING_ROOT_CA);
  if (!client.connect(PROVISIONING_HOST, PROVISIONING_PORT)) {
    tprov_memzero(g_request, sizeof g_request);
    char reason[96];
    client.lastError(reason, sizeof reason);
    Serial.printf("[PROVISION] cannot connect to %s: %s\n", PROVISIONING_HOST, reason);
    return;
  }

  // Head and body in one write, so in one TLS record: the head goes just before the body.
  int head_len = snprintf(head, sizeof head,
                          "POST %s%s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                          "Accept: %s\r\nContent-Length: %u\r\nConnection: close\r\n\r\n",
                          PROVISIONING_BASE_PATH, TPROV_PATH, PROVISIONING_HOST,
                          TPROV_CONTENT_TYPE, TPROV_ACCEPT, (unsigned)body_len);
  if (head_len < 0 || (size_t)head_len > REQUEST_HEAD_MAX_LEN || body_len > REQUEST_BODY_MAX_LEN) {
    tprov_memzero(g_request, sizeof g_request);
    client.stop();
    return;
  }
  char *request = g_request_body - head_len;
  memcpy(request, head, (size_t)head_len);
  size_t request_len = (size_t)head_len + body_len;
  bool sent = client.write((const uint8_t *)request, request_len) == request_len;
  tprov_memzero(g_request, sizeof g_request);
  if (!sent) {
    client.stop();
    return;
  }

  uint32_t deadline_ms = millis() + HTTP_TIMEOUT_MS;
  // "HTTP/1.1 201 Created"
  if (read_line(client, deadline_ms, line, sizeof line) < 12 || strncmp(line, "HTTP/1.", 7) != 0 ||
      line[9] < '1' || line[9] > '5') {
    client.stop();
    return;
  }
  long status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  long content_length = -1;
  bool chunked = false;
  for (;;) {
    int n = read_line(client, deadline_ms, line, sizeof line);
    if (n < 0) {
      client.stop();
      return; // headers cut short: no answer
    }
    if (n == 0) {
      break;
    }
    uint32_t value = 0;
    if (strncasecmp(line, "content-length:", 15) == 0 && parse_header_number(line + 15, value)) {
      content_length = (long)value;
    } else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
      chunked = true;
    } else if (strncasecmp(line, "retry-after:", 12) == 0 &&
               parse_header_number(line + 12, value)) {
      ex.has_header_retry_after = true;
      ex.header_retry_after_secs = value;
    }
  }
  ex.http_status = status;

  size_t len = 0;
  bool too_large = content_length > (long)sizeof g_response_body;
  while (!chunked && !too_large && (content_length < 0 || (long)len < content_length)) {
    int c = read_byte(client, deadline_ms);
    if (c < 0) {
      break;
    }
    if (len == sizeof g_response_body) {
      too_large = true;
      break;
    }
    g_response_body[len++] = (char)c;
  }
  client.stop();

  if (chunked) {
    ex.parse_status = TPROV_ERR_RESPONSE_SYNTAX;
  } else if (too_large) {
    ex.parse_status = TPROV_ERR_RESPONSE_TOO_LARGE;
  } else if (content_length >= 0 && (long)len < content_length) {
    ex.parse_status = TPROV_ERR_RESPONSE_TRUNCATED;
  } else {
    ex.parse_status = tprov_parse_answer(g_response_body, len, g_device_id, timestamp, &key,
                                         &g_answer_keys, request_hash, &g_response);
  }
  tprov_memzero(g_response_body, sizeof g_response_body);
}

// One provisioning round: a request, plus one immediate retry if the clock was refused.
static void provision() {
  tprov_key_t key;
  KeyStorage storage;
  uint32_t key_version = 1;
  bool resynced = false;
#ifdef PROVISIONING_X509
  tprov_certificate_t certificate = x509_certificate(g_cert_len, g_chain_len);
  const tprov_certificate_t *cert = &certificate;
#else
  const tprov_certificate_t *cert = nullptr;
#endif

  if (!g_answer_keys_valid) {
    Serial.println("[PROVISION] PROVISIONING_ANSWER_KEY in settings.h is not an answer key: copy it "
                   "from `thinger-provisioner answer-key show`");
    schedule_attempt(REFUSED_PARK_MS);
    return;
  }
  if (!open_device_key(key, storage, key_version)) {
    Serial.printf("[PROVISION] the stored device key is unusable: %s\n", KEY_FIX);
    schedule_attempt(REFUSED_PARK_MS);
    tprov_memzero(&storage, sizeof storage);
    return;
  }
  for (;;) {
    time_t now = time(nullptr);
    size_t body_len = 0;
    unsigned char request_hash[TPROV_REQUEST_HASH_LEN];
    Exchange ex;

    uint64_t timestamp = now > 0 ? (uint64_t)now : 0;
    // sealed: the credential comes encrypted to this device's key, so a replayed request is worthless.
    tprov_request_options_t options = { PROVISIONING_FLEET, key_version, true, request_hash };
    tprov_status_t status = tprov_build_request(g_device_id, timestamp, &key, &options, cert,
                                                g_request_body, REQUEST_BODY_MAX_LEN + 1, &body_len);
    if (status != TPROV_OK) {
      tprov_memzero(g_request, sizeof g_request);
      Serial.printf("[PROVISION] the device key is unusable (%s): %s\n", tprov_status_name(status),
                    KEY_FIX);
      schedule_attempt(REFUSED_PARK_MS);
      break;
    }
    Serial.printf("[PROVISION] provisioning %s\n", g_device_id);
    https_post(body_len, timestamp, key, request_hash, ex); // wipes the request

    tprov_next_t next = tprov_next_step(ex.http_status, ex.parse_status, &g_response);
    if (next == TPROV_NEXT_RETRY_WITH_SERVER_TIME && !resynced) {
      // The answer came over a verified TLS connection: its time is good enough to set ours.
      // The parser bounds server_time to TPROV_SERVER_TIME_MAX; a 32-bit time_t needs one more check.
      if (sizeof(time_t) < 8 && g_response.server_time > INT32_MAX) {
        Serial.println("[PROVISION] clock_skew: the service's time does not fit this clock");
        schedule_attempt(REFUSED_PARK_MS);
        break;
      }
      struct timeval tv = { (time_t)g_response.server_time, 0 };
      settimeofday(&tv, nullptr);
      resynced = true;
      Serial.println("[PROVISION] clock_skew: clock set from the service, retrying");
      continue;
    }
    if (next == TPROV_NEXT_STORE_CREDENTIALS) {
      store_credentials(g_response);
      g_failures = 0;
      Serial.printf("[PROVISION] provisioned %s for account %s on %s (%s)\n", g_device_id,
                    g_username, g_host,
                    g_response.created ? "new device" : "existing device, credential replaced");
    } else if (next == TPROV_NEXT_RETRY_LATER) {
      g_failures++;
      bool has_retry_after = g_response.has_retry_after || ex.has_header_retry_after;
      uint32_t retry_after_secs = g_response.has_retry_after ? g_response.retry_after_secs
                                                             : ex.header_retry_after_secs;
      Serial.printf("[PROVISION] transient failure (HTTP %ld, %s)\n", ex.http_status,
                    ex.parse_status == TPROV_OK ? g_response.error
                                                : tprov_status_name(ex.parse_status));
      schedule_attempt(tprov_retry_delay_ms(g_failures, RETRY_BASE_MS, RETRY_CAP_MS,
                                            has_retry_after, retry_after_secs, esp_random()));
    } else if (ex.parse_status == TPROV_ERR_ANSWER_SIGNATURE ||
               ex.parse_status == TPROV_ERR_ANSWER_KEY_REQUIRED) {
      // Not the service's answer: someone in the middle, or another deployment's. Nothing stored.
      Serial.printf("[PROVISION] refused an answer not signed by the pinned answer key (HTTP %ld, %s)\n",
                    ex.http_status, tprov_status_name(ex.parse_status));
      schedule_attempt(REFUSED_PARK_MS + esp_random() % REFUSED_PARK_JITTER_MS);
    } else {
      Serial.printf("[PROVISION] refused (HTTP %ld, %s)\n", ex.http_status,
                    ex.parse_status == TPROV_OK ? g_response.error
                                                : tprov_status_name(ex.parse_status));
      schedule_attempt(REFUSED_PARK_MS + esp_random() % REFUSED_PARK_JITTER_MS);
    }
    break;
  }
  tprov_memzero(&storage, sizeof storage);
  tprov_memzero(&g_response, sizeof g_response);
}

// Factory commands on the serial port, one per line. The key can be set only while none is
// stored; re-keying takes an erased flash. Nothing prints a key or a credential. With the eFuse
// key there is no set-key: the key is burned with espefuse (README.md). An X.509 device takes
// its P-256 key (set-x509-key) and its certificate (set-cert) instead.
static void run_command(const char *line) {
  if (strcmp(line, "id") == 0) {
#ifdef PROVISIONING_X509
    uint64_t mac = ESP.getEfuseMac();
    Serial.printf("device=%s\nmac=%02x:%02x:%02x:%02x:%02x:%02x\nkey=%s\ncertificate=%s\n"
                  "provisioned=%s\n", g_device_id, (unsigned)(uint8_t)mac, (unsigned)(uint8_t)(mac >> 8),
                  (unsigned)(uint8_t)(mac >> 16), (unsigned)(uint8_t)(mac >> 24),
                  (unsigned)(uint8_t)(mac >> 32), (unsigned)(uint8_t)(mac >> 40), g_key_state,
                  g_cert_state, g_have_credentials ? "yes" : "no");
#else
    Serial.printf("device=%s\nkey=%s\nprovisioned=%s\n", g_device_id, g_key_state,
                  g_have_credentials ? "yes" : "no");
#endif
#if defined(PROVISIONING_X509)
  } else if (strncmp(line, "set-key ", 8) == 0) {
    Serial.println("error=x509_device (send: set-x509-key KEY, then set-cert CERT [CHAIN])");
  } else if (strncmp(line, "set-x509-key ", 13) == 0) {
    set_x509_key(line + 13);
  } else if (strncmp(line, "set-cert ", 9) == 0) {
    set_certificate(line + 9);
#elif defined(PROVISIONING_EFUSE_HMAC_KEY)
  } else if (strncmp(line, "set-key ", 8) == 0) {
    Serial.println("error=key_in_efuse");
#else
  } else if (strncmp(line, "set-key ", 8) == 0) {
    // "set-key KEY" or "set-key KEY VERSION": the version of the fleet key KEY was derived from.
    char key[TPROV_DEVICE_KEY_B64_LEN + 1];
    char signature[TPROV_SIGNATURE_B64_LEN + 1];
    const char *space = strchr(line + 8, ' ');
    size_t key_len = space != nullptr ? (size_t)(space - (line + 8)) : strlen(line + 8);
    long version = space != nullptr ? strtol(space + 1, nullptr, 10) : 1;
    if (key_len > TPROV_DEVICE_KEY_B64_LEN) key_len = TPROV_DEVICE_KEY_B64_LEN + 1; // refused below
    memcpy(key, line + 8, key_len < sizeof key ? key_len : sizeof key - 1);
    key[key_len < sizeof key ? key_len : sizeof key - 1] = '\0';
    if (has_device_key()) {
      Serial.println("error=key_already_set");
    } else if (key_len > TPROV_DEVICE_KEY_B64_LEN || version < 1 || version > 999 ||
               tprov_sign(g_device_id, 0, key, signature, sizeof signature) != TPROV_OK) {
      Serial.println("error=invalid_key");
    } else if (prefs.putUInt(NVS_KEY_VERSION, (uint32_t)version) == 0 ||
               prefs.putString(NVS_DEVICE_KEY, key) == 0) {
      Serial.println("error=nvs_write_failed");
    } else {
      g_have_key = true;
      g_key_state = "present";
      Serial.println("ok");
    }
    tprov_memzero(key, sizeof key);
#endif
  } else if (strcmp(line, "reprovision") == 0) {
    forget_credentials();
    g_next_attempt_ms = millis();
    Serial.println("ok");
  } else {
    Serial.printf("error=unknown_command (%s)\n", COMMANDS);
  }
}

static void handle_serial() {
  static char line[SERIAL_LINE_MAX_LEN + 1];
  static size_t len = 0;
  static bool overflow = false;

  while (Serial.available() > 0) {
    int c = Serial.read();
    if (c == '\r') {
      continue;
    }
    if (c != '\n') {
      if (len + 1 < sizeof line) {
        line[len++] = (char)c;
      } else {
        overflow = true;
      }
      continue;
    }
    line[len] = '\0';
    if (overflow) {
      Serial.println("error=line_too_long");
    } else {
      run_command(line);
    }
    tprov_memzero(line, sizeof line);
    len = 0;
    overflow = false;
  }
}

static void on_thinger_state(ThingerClient::THINGER_STATE state) {
  if (state == ThingerClient::THINGER_AUTH_FAILED) {
    if (g_auth_failures < UINT8_MAX) {
      g_auth_failures++;
    }
  } else if (state == ThingerClient::THINGER_AUTHENTICATED) {
    g_auth_failures = 0;
    g_reprovisions = 0;
  }
}

void setup() {
#ifdef PROVISIONING_X509
  Serial.setRxBufferSize(SERIAL_LINE_MAX_LEN + 2); // a whole set-cert line, even while provisioning
#endif
  Serial.begin(115200);
  prefs.begin(NVS_NAMESPACE, false);
  WiFi.mode(WIFI_STA); // the radio on first: the hardware RNG is truly random with it
#if defined(PROVISIONING_X509)
  load_x509_identity();
#elif defined(PROVISIONING_EFUSE_HMAC_KEY)
  make_device_id(g_device_id);
  g_key_state = read_efuse_key_state();
  g_have_key = strcmp(g_key_state, "efuse") == 0;
#else
  make_device_id(g_device_id);
  g_have_key = prefs.isKey(NVS_DEVICE_KEY);
  g_key_state = g_have_key ? "present" : "absent";
#endif
  load_credentials();
  g_answer_keys_valid = load_answer_keys();
  if (!g_answer_keys_valid) {
    Serial.println("[PROVISION] PROVISIONING_ANSWER_KEY is not an answer key: nothing will be provisioned");
  } else if (g_answer_keys.count == 0) {
    Serial.println("[PROVISION] no answer key pinned: answers are not checked to come from the service "
                   "(set PROVISIONING_ANSWER_KEY)");
  }
#ifdef PROVISIONING_X509
  Serial.printf("[PROVISION] device %s, key %s, certificate %s%s%s, credentials %s\n",
                g_device_id[0] != '\0' ? g_device_id : "(none)", g_key_state, g_cert_state,
                has_device_key() ? "" : ": ", has_device_key() ? "" : KEY_FIX,
                g_have_credentials ? "stored" : "none");
#else
  Serial.printf("[PROVISION] device %s, key %s%s%s, credentials %s\n", g_device_id, g_key_state,
                has_device_key() ? "" : ": ", has_device_key() ? "" : KEY_FIX,
                g_have_credentials ? "stored" : "none");
#endif

  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  configTime(0, 0, "pool.ntp.org", "time.google.com");
  thing.add_wifi(WIFI_SSID, WIFI_PASSWORD);
  thing.set_credentials(g_username, g_device_id, g_credential);
  if (g_have_credentials) {
    thing.set_host(g_host);
  }
  thing.set_state_listener(on_thinger_state);
  g_next_attempt_ms = millis() + esp_random() % FIRST_ATTEMPT_SPREAD_MS;

  // Example resources; the product's own go here.
  thing["millis"] >> outputValue(millis());
}

void loop() {
  handle_serial();
  if (!has_device_key()) {
    delay(10);
    return;
  }
  if (!g_have_credentials) {
    if (WiFi.status() != WL_CONNECTED) {
      g_wifi_up_since_ms = 0;
      delay(10);
      return;
    }
    if (g_wifi_up_since_ms == 0) {
      g_wifi_up_since_ms = millis();
    }
    // Give SNTP a moment: some builds check certificate dates, and a right clock saves the
    // clock_skew round trip. The service's time is the fallback.
    bool clock_pending = time(nullptr) < MIN_VALID_UNIX_TIME &&
                         millis() - g_wifi_up_since_ms < SNTP_WAIT_MS;
    if (clock_pending || (int32_t)(millis() - g_next_attempt_ms) < 0) {
      delay(10);
      return;
    }
    provision();
    return;
  }

  thing.handle();
  if (g_auth_failures >= AUTH_FAILURES_BEFORE_REPROVISION) {
    g_auth_failures = 0;
    g_reprovisions++;
    g_have_credentials = false;
    Serial.println("[PROVISION] Thinger refuses the stored credential: provisioning again");
    schedule_attempt(tprov_retry_delay_ms(g_reprovisions, REPROVISION_BASE_MS,
                                          REPROVISION_CAP_MS, false, 0, esp_random()));
  }
}
