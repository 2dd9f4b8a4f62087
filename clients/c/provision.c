/*
 * provision: the Linux reference client of the thinger-provisioner protocol, on the portable core
 * (thinger_provision.c) and libcurl. It proves the device's identity with its device key, or with
 * an X.509 certificate and its private key, asks for the text response, retries by the protocol's
 * rules and saves the Thinger credentials to an owner-only file. Run with --help for usage and
 * exit codes.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mbedtls/bignum.h"
#include "mbedtls/ecp.h"
#include "mbedtls/oid.h"
#include "mbedtls/pk.h"
#include "mbedtls/version.h"
#include "mbedtls/x509_crt.h"

#include "thinger_provision.h"

/* mbedTLS 3 made the key pair's fields private; 2.28 has no such macro. */
#ifndef MBEDTLS_PRIVATE
#define MBEDTLS_PRIVATE(member) member
#endif

#define DEFAULT_OUT_PATH "./thinger-credentials"
#define DEFAULT_TIMEOUT_MS 10000L
#define DEFAULT_MAX_ATTEMPTS 5L
#define MAX_TIMEOUT_MS 600000L
#define MAX_ATTEMPTS_LIMIT 100L
#define BACKOFF_BASE_MS 1000u
#define BACKOFF_CAP_MS 60000u
/* A CLI run is attended: a longer Retry-After ends it rather than hanging for an hour. */
#define MAX_RETRY_AFTER_WAIT_SECS 300u
#define SECRET_FILE_MAX_BYTES 512
#define URL_MAX_LEN 2048
#define USER_AGENT "thinger-provision-c/1"
#define ENV_DEVICE_KEY "THINGER_DEVICE_KEY"
#define ENV_ANSWER_KEY "THINGER_ANSWER_KEY"

enum exit_code {
    EXIT_OK = 0,
    EXIT_INTERNAL = 1,
    EXIT_USAGE = 2,
    EXIT_REFUSED = 3,
    EXIT_UNAVAILABLE = 4,
    EXIT_SERVICE = 5,
    EXIT_OUTPUT = 6,
    EXIT_TLS = 7
};

#define MAX_RESYNCS 2

static const char USAGE[] =
    "usage: provision --url URL --device ID [--device-key-file FILE | --device-key KEY]\n"
    "                 [--answer-key KEY]... [--fleet NAME] [--key-version N] [--unsealed]\n"
    "                 [--out FILE] [--ca FILE] [--timeout-ms N] [--max-attempts N]\n"
    "       provision --url URL --cert FILE --key FILE --answer-key KEY [--device ID]\n"
    "                 [--fleet NAME] [--unsealed] [--out FILE] [--ca FILE] [--timeout-ms N]\n"
    "                 [--max-attempts N]\n"
    "       provision --derive-key --device ID (--fleet-key-file FILE | --fleet-key B64)\n"
    "\n"
    "Provisions a Thinger.io device through a thinger-provisioner service and saves its\n"
    "credentials (username, device, credential, host, created as key=value lines) to FILE,\n"
    "created owner-only (0600) and replaced atomically.\n"
    "\n"
    "  --url URL            base URL of the service; the request goes to URL" TPROV_PATH ".\n"
    "                       https is required; http only for localhost, 127.0.0.1 and [::1]\n"
    "  --device ID          Thinger device ID, [A-Za-z0-9_-]{1,32}\n"
    "  --device-key-file F  file holding the device key (base64, 44 characters). Preferred:\n"
    "                       a key on the command line is visible to every user via ps\n"
    "  --device-key KEY     the device key itself; overwritten in argv at once, but still\n"
    "                       briefly visible. Without either option the key is read from\n"
    "                       the environment variable " ENV_DEVICE_KEY "\n"
    "  --cert FILE          X.509 fleets (proof: [x509]): PEM with the device certificate and,\n"
    "                       after it, at most one intermediate CA certificate\n"
    "  --key FILE           the certificate's private key, PEM (PKCS#8, SEC1 or PKCS#1): ECDSA\n"
    "                       P-256, or RSA 2048 to 4096 bits with --unsealed (RSA cannot open\n"
    "                       sealed answers). With --cert, --device defaults to the\n"
    "                       certificate's subject common name\n"
    "  --answer-key KEY     the service's answer key, as `thinger-provisioner answer-key show`\n"
    "                       prints it (base64 of a P-256 point), or a file holding it; twice\n"
    "                       during a rotation (old and new). Every success answer must then be\n"
    "                       signed by it, for this very request; without it the environment\n"
    "                       variable " ENV_ANSWER_KEY " (keys separated by spaces or commas).\n"
    "                       Required for sealed X.509 requests, whose answers anyone could\n"
    "                       forge from the certificate alone; strongly advised for all\n"
    "  --fleet NAME         the fleet to join (default: the service's default fleet)\n"
    "  --key-version N      the fleet key version the device key was derived from (default 1)\n"
    "  --unsealed           protocol v1: the credential comes in clear. Only for services from\n"
    "                       before sealing; by default the request is v2 and the credential\n"
    "                       comes sealed to the device key, so a replayed request reads nothing\n"
    "  --out FILE           credentials file (default " DEFAULT_OUT_PATH ")\n"
    "  --ca FILE            PEM bundle of CAs to trust instead of the system's\n"
    "  --timeout-ms N       time limit of one HTTP exchange (default 10000)\n"
    "  --max-attempts N     requests before giving up on transient failures (default 5);\n"
    "                       the one immediate retry after clock_skew is not counted\n"
    "\n"
    "  --derive-key         factory and test helper: print the device key for --device,\n"
    "                       HMAC-SHA256(fleet key, device ID) in base64, and exit. The fleet\n"
    "                       key never belongs on a device\n"
    "  --fleet-key-file F   file holding the fleet key (base64); preferred over --fleet-key\n"
    "  --fleet-key B64      the fleet key itself\n"
    "\n"
    "Prints device, username, host, created and credentials_file as key=value lines; never the\n"
    "credential or a key. Retries: clock_skew once at once with the server's time; 429, 503,\n"
    "5xx gateway answers and network failures with exponential backoff and full jitter (1 s\n"
    "doubling to 60 s), after the Retry-After when the service gives one (more than 300 s\n"
    "ends the run); other 4xx never.\n"
    "\n";

/* Split in two: C99 compilers need not take a string literal over 4095 characters. */
static const char USAGE_EXIT_CODES[] =
    "exit codes:\n"
    "  0  provisioned, credentials saved\n"
    "  1  internal error (libcurl could not start, out of memory)\n"
    "  2  usage: bad option, device ID, key, answer key or URL, or a sealed --cert run\n"
    "     without --answer-key (nothing is sent)\n"
    "  3  refused by the service (invalid_signature, device_not_allowed, device_disabled,\n"
    "     device_conflict, invalid_request, clock_skew even with the server's time, ...):\n"
    "     retrying will not help\n"
    "  4  unavailable: network failures, 429 or 503 until --max-attempts ran out, or a\n"
    "     Retry-After over 300 s: try again later\n"
    "  5  service error: 500/502 not marked retryable, an answer outside the protocol, a\n"
    "     sealed credential that does not open with the device's key, or an answer not\n"
    "     signed by the pinned answer key for this request (nothing is saved)\n"
    "  6  the credentials file could not be written; if the service had answered, the\n"
    "     device's credential was already replaced: run again\n"
    "  7  TLS: the service's certificate is not trusted (see --ca)\n";

typedef struct {
    const char *url;
    const char *device;
    const char *device_key;      /* from argv, already copied into key below */
    const char *device_key_file;
    const char *out_path;
    const char *ca_file;
    const char *fleet_key;
    const char *fleet_key_file;
    const char *cert_file;
    const char *key_file;
    long timeout_ms;
    long max_attempts;
    int derive_key;
    int unsealed;
    tprov_request_options_t request; /* fleet and key version, when not the defaults */
    unsigned char answer_keys[TPROV_ANSWER_KEYS_MAX][TPROV_P256_POINT_LEN];
    tprov_answer_keys_t pinned;      /* points into answer_keys; count 0: none pinned */
    char key[SECRET_FILE_MAX_BYTES + 1]; /* the device or fleet key in use */
    char device_from_cert[TPROV_DEVICE_ID_MAX_LEN + 1];
} options_t;

/* The device's identity for the core: a device key, or a certificate and its private key. */
typedef struct {
    tprov_key_t key;
    tprov_hmac_key_t hmac_storage;
    tprov_p256_key_t p256_storage;
    mbedtls_x509_crt chain; /* the device certificate, then its intermediate */
    mbedtls_pk_context pk;  /* the private key, for RSA signatures */
    tprov_certificate_t certificate;
    int has_certificate;
} identity_t;

typedef struct {
    char body[TPROV_RESPONSE_MAX_LEN];
    size_t len;
    int overflow;
} response_buffer_t;

typedef struct {
    long http_status;          /* 0: no HTTP answer */
    tprov_status_t parse_status;
    tprov_response_t response;
    int has_header_retry_after;
    uint32_t header_retry_after_secs;
    CURLcode curl_code;
    char curl_error[CURL_ERROR_SIZE];
} exchange_t;

static void fail(const char *message)
{
    fprintf(stderr, "provision: %s\n", message);
}

static int usage_error(const char *message)
{
    fprintf(stderr, "provision: %s\n(run provision --help for usage)\n", message);
    return EXIT_USAGE;
}

static int parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        return -1;
    }
    *out = value;
    return 0;
}

/* Copies a secret into dst (dst_size bytes), trimming trailing whitespace such as the newline
 * of a file. Returns 0, or -1 when it is empty or too long. */
static int take_secret(char *dst, size_t dst_size, const char *src, size_t src_len)
{
    while (src_len > 0 && (src[src_len - 1] == '\n' || src[src_len - 1] == '\r' ||
                           src[src_len - 1] == ' ' || src[src_len - 1] == '\t')) {
        src_len--;
    }
    if (src_len == 0 || src_len >= dst_size) {
        return -1;
    }
    memcpy(dst, src, src_len);
    dst[src_len] = '\0';
    return 0;
}

/* Reads until size bytes, end of file or an error; returns the bytes read. */
static size_t read_up_to(int fd, unsigned char *buf, size_t size)
{
    size_t len = 0;

    while (len < size) {
        ssize_t n = read(fd, buf + len, size - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    return len;
}

static int read_secret_file(const char *path, char *dst, size_t dst_size)
{
    char buf[SECRET_FILE_MAX_BYTES + 2];
    size_t len = 0;
    struct stat st;
    int fd = open(path, O_RDONLY);
    int result = -1;

    if (fd < 0) {
        fprintf(stderr, "provision: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077) != 0) {
        fprintf(stderr, "provision: warning: %s is readable by other users (chmod 600 it)\n",
                path);
    }
    len = read_up_to(fd, (unsigned char *)buf, sizeof buf);
    close(fd);
    if (len > SECRET_FILE_MAX_BYTES || take_secret(dst, dst_size, buf, len) != 0) {
        fprintf(stderr, "provision: %s does not hold a single key\n", path);
    } else {
        result = 0;
    }
    tprov_memzero(buf, sizeof buf);
    return result;
}

/* Pins one answer key: base64 of the point, or a file holding it. */
static int add_answer_key(options_t *opt, const char *value, size_t value_len, const char *origin)
{
    char text[TPROV_ANSWER_KEY_B64_LEN + 1];
    unsigned char *point;

    if (opt->pinned.count >= TPROV_ANSWER_KEYS_MAX) {
        fprintf(stderr, "provision: at most %d answer keys (the old and the new one of a "
                "rotation)\n", TPROV_ANSWER_KEYS_MAX);
        return -1;
    }
    point = opt->answer_keys[opt->pinned.count];
    if (value_len == TPROV_ANSWER_KEY_B64_LEN) {
        memcpy(text, value, value_len);
        text[value_len] = '\0';
    } else {
        char buf[SECRET_FILE_MAX_BYTES + 2];
        size_t len;
        int fd;

        if (value_len >= sizeof buf) {
            fprintf(stderr, "provision: %s is neither an answer key nor a file\n", origin);
            return -1;
        }
        memcpy(buf, value, value_len);
        buf[value_len] = '\0';
        fd = open(buf, O_RDONLY);
        if (fd < 0) {
            fprintf(stderr, "provision: %s: not an answer key (88 characters of base64), and "
                    "cannot open it as a file: %s\n", origin, strerror(errno));
            return -1;
        }
        len = read_up_to(fd, (unsigned char *)buf, sizeof buf);
        close(fd);
        if (len > SECRET_FILE_MAX_BYTES || take_secret(text, sizeof text, buf, len) != 0) {
            fprintf(stderr, "provision: %s does not hold a single answer key\n", origin);
            return -1;
        }
    }
    if (tprov_answer_key_from_base64(text, point) != TPROV_OK) {
        fprintf(stderr, "provision: %s is not an answer key: base64 of an uncompressed P-256 "
                "point, as `thinger-provisioner answer-key show` prints it\n", origin);
        return -1;
    }
    opt->pinned.keys[opt->pinned.count] = point;
    opt->pinned.count++;
    return 0;
}

/* THINGER_ANSWER_KEY: one or two keys, separated by spaces or commas. */
static int add_answer_keys_from_env(options_t *opt, const char *env)
{
    while (*env != '\0') {
        size_t len = strcspn(env, " ,\t\n");

        if (len > 0 && add_answer_key(opt, env, len, ENV_ANSWER_KEY) != 0) {
            return -1;
        }
        env += len;
        env += strspn(env, " ,\t\n");
    }
    return 0;
}

static int parse_options(int argc, char **argv, options_t *opt)
{
    int i;

    opt->out_path = DEFAULT_OUT_PATH;
    opt->timeout_ms = DEFAULT_TIMEOUT_MS;
    opt->max_attempts = DEFAULT_MAX_ATTEMPTS;

    for (i = 1; i < argc; i++) {
        const char *name = argv[i];
        char *value = NULL;

        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            fputs(USAGE, stdout);
            fputs(USAGE_EXIT_CODES, stdout);
            exit(EXIT_OK);
        }
        if (strcmp(name, "--derive-key") == 0) {
            opt->derive_key = 1;
            continue;
        }
        if (strcmp(name, "--unsealed") == 0) {
            opt->unsealed = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "provision: %s needs a value\n", name);
            return usage_error("bad arguments");
        }
        value = argv[++i];
        if (strcmp(name, "--url") == 0) {
            opt->url = value;
        } else if (strcmp(name, "--device") == 0) {
            opt->device = value;
        } else if (strcmp(name, "--device-key") == 0) {
            if (take_secret(opt->key, sizeof opt->key, value, strlen(value)) != 0) {
                return usage_error("--device-key is empty or too long");
            }
            /* Shortens the time the key is readable in /proc/PID/cmdline. */
            tprov_memzero(value, strlen(value));
            opt->device_key = "(argv)";
        } else if (strcmp(name, "--device-key-file") == 0) {
            opt->device_key_file = value;
        } else if (strcmp(name, "--cert") == 0) {
            opt->cert_file = value;
        } else if (strcmp(name, "--key") == 0) {
            opt->key_file = value;
        } else if (strcmp(name, "--answer-key") == 0) {
            if (add_answer_key(opt, value, strlen(value), "--answer-key") != 0) {
                return usage_error("bad --answer-key");
            }
        } else if (strcmp(name, "--fleet") == 0) {
            opt->request.fleet = value;
        } else if (strcmp(name, "--key-version") == 0) {
            long version = 0;
            if (parse_long(value, 1, 999, &version) != 0) {
                return usage_error("--key-version must be 1 to 999");
            }
            opt->request.key_version = (uint32_t)version;
        } else if (strcmp(name, "--out") == 0) {
            opt->out_path = value;
        } else if (strcmp(name, "--ca") == 0) {
            opt->ca_file = value;
        } else if (strcmp(name, "--timeout-ms") == 0) {
            if (parse_long(value, 1, MAX_TIMEOUT_MS, &opt->timeout_ms) != 0) {
                return usage_error("--timeout-ms must be 1 to 600000");
            }
        } else if (strcmp(name, "--max-attempts") == 0) {
            if (parse_long(value, 1, MAX_ATTEMPTS_LIMIT, &opt->max_attempts) != 0) {
                return usage_error("--max-attempts must be 1 to 100");
            }
        } else if (strcmp(name, "--fleet-key") == 0) {
            if (take_secret(opt->key, sizeof opt->key, value, strlen(value)) != 0) {
                return usage_error("--fleet-key is empty or too long");
            }
            tprov_memzero(value, strlen(value));
            opt->fleet_key = "(argv)";
        } else if (strcmp(name, "--fleet-key-file") == 0) {
            opt->fleet_key_file = value;
        } else {
            fprintf(stderr, "provision: unknown option %s\n", name);
            return usage_error("bad arguments");
        }
    }

    if ((opt->cert_file != NULL) != (opt->key_file != NULL)) {
        return usage_error("--cert and --key go together");
    }
    if (opt->device == NULL && opt->cert_file == NULL) {
        return usage_error("--device is required");
    }
    if (opt->device != NULL && tprov_validate_device_id(opt->device) != TPROV_OK) {
        return usage_error("--device must match [A-Za-z0-9_-]{1,32}");
    }
    if (opt->derive_key) {
        if (opt->device == NULL || opt->device_key != NULL || opt->device_key_file != NULL ||
            opt->url != NULL || opt->cert_file != NULL) {
            return usage_error("--derive-key takes only --device and a fleet key");
        }
        if ((opt->fleet_key != NULL) == (opt->fleet_key_file != NULL)) {
            return usage_error("--derive-key needs one of --fleet-key-file, --fleet-key");
        }
        if (opt->fleet_key_file != NULL &&
            read_secret_file(opt->fleet_key_file, opt->key, sizeof opt->key) != 0) {
            return EXIT_USAGE;
        }
        return EXIT_OK;
    }

    if (opt->url == NULL) {
        return usage_error("--url is required");
    }
    opt->request.sealed = !opt->unsealed;
    if (opt->pinned.count == 0 && getenv(ENV_ANSWER_KEY) != NULL &&
        add_answer_keys_from_env(opt, getenv(ENV_ANSWER_KEY)) != 0) {
        return usage_error("bad " ENV_ANSWER_KEY);
    }
    if (opt->fleet_key != NULL || opt->fleet_key_file != NULL) {
        return usage_error("a fleet key is only for --derive-key: devices hold device keys");
    }
    if (opt->device_key != NULL && opt->device_key_file != NULL) {
        return usage_error("give one of --device-key-file, --device-key");
    }
    if (opt->cert_file != NULL) {
        if (opt->device_key != NULL || opt->device_key_file != NULL) {
            return usage_error("a certificate replaces the device key: give --cert and --key, "
                               "or a device key, not both");
        }
        if (opt->request.key_version != 0) {
            return usage_error("--key-version is for device keys, not certificates");
        }
        /* Refused before the request: the service would replace the credential, and the answer
         * could not be trusted. */
        if (opt->request.sealed && opt->pinned.count == 0) {
            return usage_error("a sealed X.509 request needs the service's answer key "
                               "(--answer-key, from `thinger-provisioner answer-key show`): "
                               "without it anyone in the middle can forge the answer from the "
                               "certificate alone");
        }
        return EXIT_OK;
    }
    if (opt->device_key_file != NULL) {
        if (read_secret_file(opt->device_key_file, opt->key, sizeof opt->key) != 0) {
            return EXIT_USAGE;
        }
    } else if (opt->device_key == NULL) {
        const char *env = getenv(ENV_DEVICE_KEY);

        if (env == NULL || take_secret(opt->key, sizeof opt->key, env, strlen(env)) != 0) {
            return usage_error("no device key: give --device-key-file, --device-key or "
                               ENV_DEVICE_KEY);
        }
    }
    return EXIT_OK;
}

static int derive_key(options_t *opt)
{
    char device_key[TPROV_DEVICE_KEY_B64_LEN + 1];
    tprov_status_t status = tprov_derive_device_key(opt->key, opt->device, device_key,
                                                    sizeof device_key);

    tprov_memzero(opt->key, sizeof opt->key);
    if (status == TPROV_ERR_KEY) {
        return usage_error("the fleet key must be base64 of 32 to 256 bytes");
    }
    if (status != TPROV_OK) {
        fprintf(stderr, "provision: cannot derive the key: %s\n", tprov_status_name(status));
        return EXIT_INTERNAL;
    }
    printf("%s\n", device_key);
    tprov_memzero(device_key, sizeof device_key);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
}

/* Fills buf with len bytes from the kernel's CSPRNG: the blinding of the P-256 key's scalar
 * multiplications, and RSA's. mbedTLS's f_rng signature. */
static int urandom_fill(void *ctx, unsigned char *buf, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got;

    (void)ctx;
    if (fd < 0) {
        return -1;
    }
    got = read_up_to(fd, buf, len);
    close(fd);
    return got == len ? 0 : -1;
}

/* RSA keys sign through mbedtls_pk (PKCS#1 v1.5 with SHA-256). */
static int rsa_sign(void *ctx, const unsigned char digest[32], unsigned char *signature,
                    size_t signature_size, size_t *signature_len)
{
    mbedtls_pk_context *pk = ctx;

    if (mbedtls_pk_get_len(pk) > signature_size) {
        return -1;
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    return mbedtls_pk_sign(pk, MBEDTLS_MD_SHA256, digest, 32, signature, signature_size,
                           signature_len, urandom_fill, NULL);
#else
    return mbedtls_pk_sign(pk, MBEDTLS_MD_SHA256, digest, 32, signature, signature_len,
                           urandom_fill, NULL);
#endif
}

static void free_identity(identity_t *id)
{
    mbedtls_x509_crt_free(&id->chain);
    mbedtls_pk_free(&id->pk); /* zeroizes the key */
    tprov_memzero(&id->hmac_storage, sizeof id->hmac_storage);
    tprov_memzero(&id->p256_storage, sizeof id->p256_storage);
    tprov_memzero(&id->key, sizeof id->key);
}

/* The subject's common name of the device certificate, when it is a valid device ID. */
static int certificate_device_id(const mbedtls_x509_crt *crt, char *out, size_t out_size)
{
    const mbedtls_x509_name *name;
    int found = 0;

    for (name = &crt->subject; name != NULL; name = name->next) {
        if (name->oid.p != NULL && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) == 0) {
            if (found || name->val.len == 0 || name->val.len >= out_size) {
                return -1; /* two common names, as the service: none is the device */
            }
            memcpy(out, name->val.p, name->val.len);
            out[name->val.len] = '\0';
            found = 1;
        }
    }
    return found && tprov_validate_device_id(out) == TPROV_OK ? 0 : -1;
}

/* Loads --cert and --key: checks the key type and size, that the key is the certificate's, and
 * sets up the core's key (the default P-256 implementation, or RSA through mbedtls_pk). */
static int load_certificate_identity(options_t *opt, identity_t *id)
{
    unsigned char d[TPROV_P256_SCALAR_LEN];
    struct stat st;
    int rc;

    if (access(opt->cert_file, R_OK) != 0 || access(opt->key_file, R_OK) != 0) {
        const char *path = access(opt->cert_file, R_OK) != 0 ? opt->cert_file : opt->key_file;

        fprintf(stderr, "provision: cannot open %s: %s\n", path, strerror(errno));
        return usage_error(path == opt->cert_file ? "bad --cert" : "bad --key");
    }
    if (mbedtls_x509_crt_parse_file(&id->chain, opt->cert_file) != 0) {
        fprintf(stderr, "provision: %s does not hold a PEM certificate mbedTLS can read\n",
                opt->cert_file);
        return usage_error("bad --cert");
    }
    if (id->chain.next != NULL && id->chain.next->next != NULL) {
        return usage_error("--cert holds more than the device certificate and one intermediate");
    }
    if (stat(opt->key_file, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077) != 0) {
        fprintf(stderr, "provision: warning: %s is readable by other users (chmod 600 it)\n",
                opt->key_file);
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    rc = mbedtls_pk_parse_keyfile(&id->pk, opt->key_file, NULL, urandom_fill, NULL);
#else
    rc = mbedtls_pk_parse_keyfile(&id->pk, opt->key_file, NULL);
#endif
    if (rc != 0) {
        fprintf(stderr, "provision: %s does not hold an unencrypted PEM private key\n",
                opt->key_file);
        return usage_error("bad --key");
    }
#if MBEDTLS_VERSION_MAJOR >= 3
    rc = mbedtls_pk_check_pair(&id->chain.pk, &id->pk, urandom_fill, NULL);
#else
    rc = mbedtls_pk_check_pair(&id->chain.pk, &id->pk);
#endif
    if (rc != 0) {
        return usage_error("--key is not the private key of the certificate in --cert");
    }
    if (opt->device == NULL) {
        if (certificate_device_id(&id->chain, opt->device_from_cert,
                                  sizeof opt->device_from_cert) != 0) {
            return usage_error("the certificate's common name is not a device ID: give --device");
        }
        opt->device = opt->device_from_cert;
    }

    if (mbedtls_pk_get_type(&id->pk) == MBEDTLS_PK_ECKEY) {
        const mbedtls_ecp_keypair *pair = mbedtls_pk_ec(id->pk);
        tprov_status_t status;

        if (pair->MBEDTLS_PRIVATE(grp).id != MBEDTLS_ECP_DP_SECP256R1) {
            return usage_error("--key is an EC key on another curve: the service takes P-256");
        }
        if (mbedtls_mpi_write_binary(&pair->MBEDTLS_PRIVATE(d), d, sizeof d) != 0) {
            return usage_error("bad --key");
        }
        status = tprov_key_from_p256(&id->key, &id->p256_storage, d, urandom_fill, NULL);
        tprov_memzero(d, sizeof d);
        if (status != TPROV_OK) {
            return usage_error("bad --key");
        }
    } else if (mbedtls_pk_get_type(&id->pk) == MBEDTLS_PK_RSA) {
        size_t bits = mbedtls_pk_get_bitlen(&id->pk);

        if (bits < 2048 || bits > 4096) {
            return usage_error("--key is RSA of another size: the service takes 2048 to 4096 bits");
        }
        if (opt->request.sealed) {
            return usage_error("an RSA key cannot open sealed answers: add --unsealed (the "
                               "fleet must allow unsealed answers)");
        }
        id->key.type = TPROV_KEY_RSA;
        id->key.sign = rsa_sign;
        id->key.ctx = &id->pk;
    } else {
        return usage_error("--key is neither ECDSA P-256 nor RSA");
    }
    id->certificate.der = id->chain.raw.p;
    id->certificate.der_len = id->chain.raw.len;
    if (id->chain.next != NULL) {
        id->certificate.chain_der = id->chain.next->raw.p;
        id->certificate.chain_der_len = id->chain.next->raw.len;
    }
    id->has_certificate = 1;
    return EXIT_OK;
}

static int load_identity(options_t *opt, identity_t *id)
{
    tprov_status_t status;

    if (opt->cert_file != NULL) {
        return load_certificate_identity(opt, id);
    }
    status = tprov_key_from_device_key(&id->key, &id->hmac_storage, opt->key);
    tprov_memzero(opt->key, sizeof opt->key);
    if (status != TPROV_OK) {
        return usage_error("the device key must be 44 characters of base64 (32 bytes)");
    }
    return EXIT_OK;
}

/* Checks the base URL and writes base + TPROV_PATH to out. Plain http is allowed for loopback
 * only: the answer carries a credential. */
static int build_url(const char *base, char *out, size_t out_size)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    char *query = NULL;
    char *fragment = NULL;
    size_t len = strlen(base);
    int result = EXIT_OK;

    if (u == NULL) {
        return EXIT_INTERNAL;
    }
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        result = usage_error("--url is not a URL");
    } else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
               curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK) {
        result = usage_error("--url must be a base URL, without ?query or #fragment");
    } else if (strcmp(scheme, "https") != 0 &&
               !(strcmp(scheme, "http") == 0 &&
                 (strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
                  strcmp(host, "[::1]") == 0))) {
        result = usage_error("--url must be https (http only for localhost)");
    } else {
        while (len > 0 && base[len - 1] == '/') {
            len--;
        }
        if (len + sizeof TPROV_PATH > out_size) {
            result = usage_error("--url is too long");
        } else {
            memcpy(out, base, len);
            memcpy(out + len, TPROV_PATH, sizeof TPROV_PATH);
        }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return result;
}

static size_t on_body(char *data, size_t size, size_t count, void *userdata)
{
    response_buffer_t *buffer = userdata;
    size_t len = size * count;

    if (len > sizeof buffer->body - buffer->len) {
        buffer->overflow = 1;
        return 0; /* aborts the transfer: no protocol answer is this long */
    }
    memcpy(buffer->body + buffer->len, data, len);
    buffer->len += len;
    return len;
}

static int set_options(CURL *curl, const options_t *opt, const char *url,
                       struct curl_slist *headers, response_buffer_t *buffer, char *error_buffer)
{
    CURLcode rc = CURLE_OK;

#define SET(option, value) \
    if (rc == CURLE_OK) rc = curl_easy_setopt(curl, option, value)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_USERAGENT, USER_AGENT);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L); /* a redirect would resend a signed request elsewhere */
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "https,http");
#endif
    SET(CURLOPT_TIMEOUT_MS, opt->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, opt->timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, buffer);
    SET(CURLOPT_ERRORBUFFER, error_buffer);
    if (opt->ca_file != NULL) {
        SET(CURLOPT_CAINFO, opt->ca_file);
    }
#undef SET
    return rc == CURLE_OK ? 0 : -1;
}

static int is_tls_trust_failure(CURLcode code)
{
    return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
           code == CURLE_SSL_ISSUER_ERROR || code == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
           code == CURLE_SSL_INVALIDCERTSTATUS || code == CURLE_SSL_CRL_BADFILE;
}

/* One POST; fills ex, opening a sealed answer with the key and the timestamp the request was
 * signed with (key NULL: a v1 request). Returns 0, or -1 when curl could not be set up. */
static int exchange(CURL *curl, const options_t *opt, const char *url,
                    struct curl_slist *headers, const char *request_body, size_t request_len,
                    const tprov_key_t *key, uint64_t timestamp,
                    const unsigned char request_hash[TPROV_REQUEST_HASH_LEN], exchange_t *ex)
{
    response_buffer_t buffer;

    memset(&buffer, 0, sizeof buffer);
    memset(ex, 0, sizeof *ex);
    if (set_options(curl, opt, url, headers, &buffer, ex->curl_error) != 0 ||
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request_body) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)request_len) != CURLE_OK) {
        return -1;
    }
    ex->curl_code = curl_easy_perform(curl);
    if (ex->curl_code == CURLE_OK || buffer.overflow) {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ex->http_status);
#if LIBCURL_VERSION_NUM >= 0x074200
        curl_off_t retry_after = 0;

        /* Gateways' own 429/503 carry the header only; the body's retry_after wins when both. */
        if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
            retry_after > 0) {
            ex->has_header_retry_after = 1;
            ex->header_retry_after_secs =
                retry_after > (curl_off_t)UINT32_MAX ? UINT32_MAX : (uint32_t)retry_after;
        }
#endif
    }
    if (buffer.overflow) {
        ex->parse_status = TPROV_ERR_RESPONSE_TOO_LARGE;
    } else if (ex->curl_code == CURLE_OK) {
        ex->parse_status = tprov_parse_answer(buffer.body, buffer.len, opt->device, timestamp,
                                              key, &opt->pinned, request_hash, &ex->response);
    } else {
        ex->parse_status = TPROV_ERR_RESPONSE_EMPTY;
    }
    tprov_memzero(&buffer, sizeof buffer);
    return 0;
}

static uint32_t random_u32(void)
{
    unsigned char bytes[4];
    uint32_t value = 0;

    if (urandom_fill(NULL, bytes, sizeof bytes) == 0) {
        value = (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 |
                bytes[3];
    }
    if (value == 0) {
        value = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    }
    return value;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec left;

    left.tv_sec = (time_t)(ms / 1000u);
    left.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

static uint64_t unix_now(void)
{
    time_t now = time(NULL);

    return now > 0 ? (uint64_t)now : 0u;
}

/* The credentials go to a temporary file created with O_EXCL and mode 0600 (mkstemp) before
 * the request is sent, so that an unwritable directory fails before the service replaces the
 * credential; they are renamed over the target only after fsync. */
typedef struct {
    char tmp_path[PATH_MAX];
    int fd;
} pending_file_t;

static int open_pending(const char *out_path, pending_file_t *pf)
{
    int n = snprintf(pf->tmp_path, sizeof pf->tmp_path, "%s.tmp.XXXXXX", out_path);

    pf->fd = -1;
    if (n < 0 || (size_t)n >= sizeof pf->tmp_path) {
        fail("--out path is too long");
        return -1;
    }
    pf->fd = mkstemp(pf->tmp_path);
    if (pf->fd < 0 || fchmod(pf->fd, S_IRUSR | S_IWUSR) != 0) {
        fprintf(stderr, "provision: cannot create a file next to %s: %s\n", out_path,
                strerror(errno));
        if (pf->fd >= 0) {
            close(pf->fd);
            unlink(pf->tmp_path);
            pf->fd = -1;
        }
        return -1;
    }
    return 0;
}

static void discard_pending(pending_file_t *pf)
{
    if (pf->fd >= 0) {
        close(pf->fd);
        unlink(pf->tmp_path);
        pf->fd = -1;
    }
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_line(int fd, const char *key, const char *value)
{
    return write_all(fd, key, strlen(key)) || write_all(fd, "=", 1) ||
           write_all(fd, value, strlen(value)) || write_all(fd, "\n", 1);
}

static int fsync_parent_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t len = slash == NULL ? 0 : (size_t)(slash - path);
    int fd;
    int result;

    if (slash == NULL) {
        strcpy(dir, ".");
    } else if (len == 0) {
        strcpy(dir, "/");
    } else if (len < sizeof dir) {
        memcpy(dir, path, len);
        dir[len] = '\0';
    } else {
        return -1;
    }
    fd = open(dir, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    result = fsync(fd);
    close(fd);
    return result;
}

static int commit_credentials(pending_file_t *pf, const char *out_path,
                              const tprov_response_t *r)
{
    int failed = write_line(pf->fd, "username", r->username) ||
                 write_line(pf->fd, "device", r->device) ||
                 write_line(pf->fd, "credential", r->credential) ||
                 write_line(pf->fd, "host", r->host) ||
                 write_line(pf->fd, "created", r->created ? "true" : "false") ||
                 fsync(pf->fd) != 0;

    if (close(pf->fd) != 0) {
        failed = 1;
    }
    pf->fd = -1;
    if (failed || rename(pf->tmp_path, out_path) != 0) {
        fprintf(stderr, "provision: cannot write %s: %s\n", out_path, strerror(errno));
        unlink(pf->tmp_path);
        return -1;
    }
    if (fsync_parent_dir(out_path) != 0) {
        fprintf(stderr, "provision: warning: cannot sync the directory of %s\n", out_path);
    }
    return 0;
}

static void describe_failure(const exchange_t *ex, char *out, size_t out_size)
{
    if (ex->http_status == 0) {
        snprintf(out, out_size, "no answer: %s",
                 ex->curl_error[0] != '\0' ? ex->curl_error : curl_easy_strerror(ex->curl_code));
    } else if (ex->parse_status == TPROV_OK) {
        snprintf(out, out_size, "HTTP %ld, error=%s%s", ex->http_status, ex->response.error,
                 strcmp(ex->response.error, "sealing_required") == 0
                     ? " (the fleet requires sealing: do not use --unsealed)"
                     : "");
    } else if (ex->parse_status == TPROV_ERR_SEALED) {
        snprintf(out, out_size, "HTTP %ld: the sealed credential does not open with this "
                 "device's key (a wrong key, or the answer was changed on the way); nothing was "
                 "saved", ex->http_status);
    } else if (ex->parse_status == TPROV_ERR_KEY_CALLBACK) {
        snprintf(out, out_size, "HTTP %ld: no key agreement with the answer's ephemeral key (not "
                 "a P-256 point, or changed on the way); nothing was saved", ex->http_status);
    } else if (ex->parse_status == TPROV_ERR_ANSWER_SIGNATURE) {
        snprintf(out, out_size, "HTTP %ld: the answer is not signed by the pinned answer key for "
                 "this request (forged by a machine in the middle, another deployment's, or "
                 "changed on the way); nothing was saved", ex->http_status);
    } else if (ex->parse_status == TPROV_ERR_ANSWER_KEY_REQUIRED) {
        snprintf(out, out_size, "HTTP %ld: the answer is sealed in a mode anyone in the middle "
                 "can forge, and no answer key is pinned (--answer-key); nothing was saved",
                 ex->http_status);
    } else if (ex->parse_status == TPROV_ERR_RESPONSE_NOT_SEALED) {
        snprintf(out, out_size, "HTTP %ld: the answer carries the credential in clear although "
                 "the request asked for it sealed (a downgrade by a machine in the middle?); "
                 "refused", ex->http_status);
    } else {
        snprintf(out, out_size, "HTTP %ld, not a protocol answer (%s)%s", ex->http_status,
                 tprov_status_name(ex->parse_status),
                 ex->http_status == 404 || ex->http_status == 405
                     ? ": is --url the service's base URL?"
                     : "");
    }
}

static int give_up_code(const exchange_t *ex)
{
    if (ex->parse_status == TPROV_OK && ex->response.kind == TPROV_RESPONSE_ERROR &&
        ex->http_status >= 400 && ex->http_status <= 499) {
        return EXIT_REFUSED;
    }
    return EXIT_SERVICE;
}

static int provision(options_t *opt, const identity_t *id)
{
    char url[URL_MAX_LEN];
    char body[TPROV_X509_REQUEST_BODY_MAX_LEN + 1];
    char reason[CURL_ERROR_SIZE + 64];
    unsigned char request_hash[TPROV_REQUEST_HASH_LEN];
    size_t body_len = 0;
    struct curl_slist *headers = NULL;
    CURL *curl = NULL;
    pending_file_t pending;
    exchange_t ex;
    int64_t clock_offset_secs = 0;
    const tprov_certificate_t *certificate = id->has_certificate ? &id->certificate : NULL;
    int resynced = 0; /* retries with the server's time so far */
    long failures = 0;
    int result = EXIT_INTERNAL;
    tprov_status_t status;

    memset(&ex, 0, sizeof ex);
    pending.fd = -1;
    opt->request.request_hash = request_hash;
    result = build_url(opt->url, url, sizeof url);
    if (result != EXIT_OK) {
        return result;
    }
    /* Validates the key and the options before any network traffic. */
    status = tprov_build_request(opt->device, unix_now(), &id->key, &opt->request, certificate,
                                 body, sizeof body, &body_len);
    tprov_memzero(body, sizeof body);
    if (status == TPROV_ERR_REQUEST_OPTION) {
        return usage_error("--fleet must match [a-z0-9_-]{1,32}");
    }
    if (status == TPROV_ERR_BUFFER_TOO_SMALL) {
        return usage_error("the certificates in --cert make the request longer than the "
                           "service's 4096 bytes");
    }
    if (status == TPROV_ERR_KEY_CALLBACK) {
        return usage_error("--key cannot sign");
    }
    if (status != TPROV_OK) {
        fprintf(stderr, "provision: %s\n", tprov_status_name(status));
        return EXIT_INTERNAL;
    }
    if (open_pending(opt->out_path, &pending) != 0) {
        return EXIT_OUTPUT;
    }

    curl = curl_easy_init();
    headers = curl_slist_append(headers, "Content-Type: " TPROV_CONTENT_TYPE);
    headers = headers == NULL ? NULL : curl_slist_append(headers, "Accept: " TPROV_ACCEPT);
    if (curl == NULL || headers == NULL) {
        fail("cannot start libcurl");
        result = EXIT_INTERNAL;
        goto done;
    }

    for (;;) {
        uint64_t timestamp = tprov_apply_clock_offset(unix_now(), clock_offset_secs);
        tprov_next_t next;
        uint32_t delay_ms;
        int has_retry_after;
        uint32_t retry_after_secs;

        status = tprov_build_request(opt->device, timestamp, &id->key, &opt->request,
                                     certificate, body, sizeof body, &body_len);
        if (status != TPROV_OK ||
            exchange(curl, opt, url, headers, body, body_len,
                     opt->request.sealed ? &id->key : NULL, timestamp, request_hash,
                     &ex) != 0) {
            fail("cannot prepare the request");
            result = EXIT_INTERNAL;
            break;
        }
        tprov_memzero(body, sizeof body);

        if (ex.http_status == 0 && is_tls_trust_failure(ex.curl_code)) {
            describe_failure(&ex, reason, sizeof reason);
            fprintf(stderr, "provision: TLS: %s\n", reason);
            result = EXIT_TLS;
            break;
        }
        next = tprov_next_step(ex.http_status, ex.parse_status, &ex.response);
        /* Twice at most: a clock_skew, then a replayed answer to a clock still behind the record. */
        if (next == TPROV_NEXT_RETRY_WITH_SERVER_TIME && resynced >= MAX_RESYNCS) {
            fail("refused even with the server's time");
            result = EXIT_REFUSED;
            break;
        }
        if (next == TPROV_NEXT_STORE_CREDENTIALS) {
            if (commit_credentials(&pending, opt->out_path, &ex.response) != 0) {
                fail("the service replaced the device's credential, but it was not saved: "
                     "run again");
                result = EXIT_OUTPUT;
                break;
            }
            printf("device=%s\nusername=%s\nhost=%s\ncreated=%s\ncredentials_file=%s\n",
                   ex.response.device, ex.response.username, ex.response.host,
                   ex.response.created ? "true" : "false", opt->out_path);
            if (!ex.response.created) {
                fprintf(stderr, "provision: %s already existed: its credential was replaced, "
                        "the old one no longer logs in\n", ex.response.device);
            }
            result = fflush(stdout) == 0 ? EXIT_OK : EXIT_OUTPUT;
            break;
        }
        if (next == TPROV_NEXT_RETRY_WITH_SERVER_TIME) {
            clock_offset_secs = tprov_clock_offset(ex.response.server_time, unix_now());
            resynced++;
            fprintf(stderr, "provision: %s: this clock is %lld s %s the service's; "
                    "retrying with the service's time\n", ex.response.error,
                    (long long)(clock_offset_secs < 0 ? -clock_offset_secs : clock_offset_secs),
                    clock_offset_secs < 0 ? "ahead of" : "behind");
            continue;
        }
        describe_failure(&ex, reason, sizeof reason);
        if (next == TPROV_NEXT_GIVE_UP) {
            fprintf(stderr, "provision: %s\n", reason);
            result = give_up_code(&ex);
            break;
        }

        has_retry_after = ex.response.has_retry_after || ex.has_header_retry_after;
        retry_after_secs = ex.response.has_retry_after ? ex.response.retry_after_secs
                                                       : ex.header_retry_after_secs;
        if (++failures >= opt->max_attempts) {
            fprintf(stderr, "provision: %s; giving up after %ld attempts\n", reason, failures);
            result = EXIT_UNAVAILABLE;
            break;
        }
        if (has_retry_after && retry_after_secs > MAX_RETRY_AFTER_WAIT_SECS) {
            fprintf(stderr, "provision: %s; the service asks to retry after %lu s\n", reason,
                    (unsigned long)retry_after_secs);
            result = EXIT_UNAVAILABLE;
            break;
        }
        delay_ms = tprov_retry_delay_ms((uint32_t)failures, BACKOFF_BASE_MS, BACKOFF_CAP_MS,
                                        has_retry_after != 0, retry_after_secs, random_u32());
        fprintf(stderr, "provision: %s; retry %ld of %ld in %lu ms\n", reason, failures,
                opt->max_attempts - 1, (unsigned long)delay_ms);
        sleep_ms(delay_ms);
    }

done:
    tprov_memzero(body, sizeof body);
    tprov_memzero(&ex.response, sizeof ex.response);
    discard_pending(&pending);
    curl_slist_free_all(headers);
    if (curl != NULL) {
        curl_easy_cleanup(curl);
    }
    return result;
}

int main(int argc, char **argv)
{
    options_t opt;
    identity_t id;
    int result;

    memset(&opt, 0, sizeof opt);
    memset(&id, 0, sizeof id);
    result = parse_options(argc, argv, &opt);
    if (result != EXIT_OK) {
        tprov_memzero(opt.key, sizeof opt.key);
        return result;
    }
    if (opt.derive_key) {
        return derive_key(&opt);
    }
    mbedtls_x509_crt_init(&id.chain);
    mbedtls_pk_init(&id.pk);
    result = load_identity(&opt, &id);
    if (result == EXIT_OK) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fail("cannot start libcurl");
            result = EXIT_INTERNAL;
        } else {
            result = provision(&opt, &id);
            curl_global_cleanup();
        }
    }
    tprov_memzero(opt.key, sizeof opt.key);
    free_identity(&id);
    return result;
}
