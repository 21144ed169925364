/* Systems without recvmmsg/sendmmsg: the module loads but offers nothing, and the NTP service uses dgram. */
#define NAPI_VERSION 8
#include <node_api.h>

static napi_value init(napi_env env, napi_value exports) { return exports; }

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
