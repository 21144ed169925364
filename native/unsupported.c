/* Systems without recvmmsg/sendmmsg: the module offers no batched UDP (the NTP service uses dgram), only AES. */
#define NAPI_VERSION 8
#include <node_api.h>

void ntptsd_register_aes(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  ntptsd_register_aes(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
