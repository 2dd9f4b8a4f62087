// Stand-in for ESP-IDF's soc/soc_caps.h (components/soc/<chip>/include/soc): only the capability
// the example sketch reads. It stands for a chip with the HMAC peripheral (ESP32-S2, -S3, -C3,
// -C6, -H2 all define SOC_HMAC_SUPPORTED 1); with HOST_CHECK_WITHOUT_HMAC it stands for the
// classic ESP32 or the ESP32-C2, whose soc_caps.h does not define it, so that the check can
// prove the sketch refuses to build there. Host compile check only (see ../README.md).
#pragma once

#ifndef HOST_CHECK_WITHOUT_HMAC
#define SOC_HMAC_SUPPORTED 1
#endif
