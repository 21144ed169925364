/*
 * The AES block cipher on the CPU's AES instructions (AES-NI), behind the same operations as the other
 * engines of src/crypto/aes.ts: key expansion, ECB, CBC-MAC, CMAC's key preparation and last step, and CTR,
 * each working in place on one 64 KiB memory that JS owns and attaches once (arguments too: see ARGS).
 * CMAC (RFC 4493) and SIV (RFC 5297) themselves stay in TypeScript (src/crypto/cmac.ts, siv.ts).
 *
 * Why: the WebAssembly engine computes SubBytes in constant time with vector shuffles, about 100 ns a
 * block; an NTS request takes some sixty blocks. The AES instructions take a few ns a block, are constant
 * time, and need no table. Registered only where the CPU has them (checked at load, and by the known
 * answers of FIPS 197 in JS before first use).
 *
 * Every offset JS passes is checked against the attached memory: a bad call throws, it never reaches
 * outside the buffer.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define AES_TARGET __attribute__((target("aes,sse4.1")))
#define BLOCK 16

/* Per environment (the main thread and each worker have their own), handed to every function as its data. */
typedef struct {
  uint8_t *mem;
  size_t size;
  napi_ref ref;
} AesState;

static int range_ok(const AesState *state, int64_t at, int64_t length) {
  return at >= 0 && length >= 0 && at + length <= (int64_t)state->size;
}

/* FIPS 197 §5.2 on 32-bit words; SubWord through AESKEYGENASSIST (no table, constant time). */
AES_TARGET static uint32_t sub_word(uint32_t w) {
  return (uint32_t)_mm_cvtsi128_si32(_mm_aeskeygenassist_si128(_mm_set1_epi32((int)w), 0));
}

AES_TARGET static void expand(const uint8_t *key, int nk, uint8_t *round_keys) {
  static const uint8_t rcon[11] = {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36};
  int rounds = nk + 6;
  int total = 4 * (rounds + 1);
  uint32_t w[60];
  memcpy(w, key, (size_t)nk * 4);
  for (int i = nk; i < total; i++) {
    uint32_t t = w[i - 1];
    if (i % nk == 0) {
      /* RotWord on a little-endian word: the first byte moves last. */
      t = sub_word((t >> 8) | (t << 24)) ^ rcon[i / nk];
    } else if (nk > 6 && i % nk == 4) {
      t = sub_word(t);
    }
    w[i] = w[i - nk] ^ t;
  }
  memcpy(round_keys, w, (size_t)total * 4);
  memset(w, 0, sizeof w);
}

AES_TARGET static inline __m128i encrypt_block(__m128i b, const __m128i *rk, int rounds) {
  b = _mm_xor_si128(b, _mm_loadu_si128(&rk[0]));
  for (int r = 1; r < rounds; r++) b = _mm_aesenc_si128(b, _mm_loadu_si128(&rk[r]));
  return _mm_aesenclast_si128(b, _mm_loadu_si128(&rk[rounds]));
}

AES_TARGET static void ecb(const uint8_t *rk, int rounds, uint8_t *p, int n) {
  for (int i = 0; i < n; i++) {
    __m128i *at = (__m128i *)(p + (size_t)i * BLOCK);
    _mm_storeu_si128(at, encrypt_block(_mm_loadu_si128(at), (const __m128i *)rk, rounds));
  }
}

AES_TARGET static void cbcmac(const uint8_t *rk, int rounds, const uint8_t *from, uint8_t *to, const uint8_t *p, int n) {
  __m128i chain = _mm_loadu_si128((const __m128i *)from);
  for (int i = 0; i < n; i++) {
    chain = _mm_xor_si128(chain, _mm_loadu_si128((const __m128i *)(p + (size_t)i * BLOCK)));
    chain = encrypt_block(chain, (const __m128i *)rk, rounds);
  }
  _mm_storeu_si128((__m128i *)to, chain);
}

/* Increments the last 32 bits of the counter block, big-endian (the only bits SIV's counter uses). */
static void increment(uint8_t *counter) {
  uint32_t low = ((uint32_t)counter[12] << 24) | ((uint32_t)counter[13] << 16) | ((uint32_t)counter[14] << 8) | counter[15];
  low++;
  counter[12] = (uint8_t)(low >> 24);
  counter[13] = (uint8_t)(low >> 16);
  counter[14] = (uint8_t)(low >> 8);
  counter[15] = (uint8_t)low;
}

AES_TARGET static void ctr(const uint8_t *rk, int rounds, uint8_t *counter, uint8_t *p, int n) {
  for (int i = 0; i < n; i++) {
    __m128i keystream = encrypt_block(_mm_loadu_si128((const __m128i *)counter), (const __m128i *)rk, rounds);
    __m128i *at = (__m128i *)(p + (size_t)i * BLOCK);
    _mm_storeu_si128(at, _mm_xor_si128(_mm_loadu_si128(at), keystream));
    increment(counter);
  }
}

static void xor_block(uint8_t *at, const uint8_t *other) {
  for (int i = 0; i < BLOCK; i++) at[i] ^= other[i];
}

/* ---- N-API glue: integer arguments only, all offsets into the attached memory ---- */

/*
 * Arguments come through the attached memory, not as JS values: JS writes them as Int32 words at ARGS and
 * calls with none. Converting each JS number costs more than the AES work of a short message.
 */
#define ARGS 0x300
#define ARG_WORDS 8

/* The environment's state and its argument words; NULL (with an exception pending) when it cannot. */
static AesState *reg_args(napi_env env, napi_callback_info info, int32_t *out) {
  AesState *state = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, (void **)&state) != napi_ok || state == NULL) {
    napi_throw_error(env, "ERR_NATIVE", "aes: no state");
    return NULL;
  }
  if (state->mem == NULL || state->size < ARGS + ARG_WORDS * 4) {
    napi_throw_error(env, "ERR_INVALID_STATE", "aes: no memory attached");
    return NULL;
  }
  memcpy(out, state->mem + ARGS, ARG_WORDS * 4);
  return state;
}

static napi_value out_of_range(napi_env env) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "aes: offset outside the attached memory");
  return NULL;
}

static int rounds_ok(int32_t rounds) { return rounds == 10 || rounds == 12 || rounds == 14; }

/* attach(mem: Uint8Array): the memory every later call works in. */
static napi_value js_attach(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  AesState *state = NULL;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, (void **)&state) != napi_ok || argc < 1 || state == NULL ||
      napi_get_typedarray_info(env, arg, &type, &length, &data, &buffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "aes.attach: needs a Uint8Array");
    return NULL;
  }
  if (state->ref != NULL) napi_delete_reference(env, state->ref);
  state->ref = NULL;
  if (napi_create_reference(env, arg, 1, &state->ref) != napi_ok) {
    state->mem = NULL;
    napi_throw_error(env, "ERR_NATIVE", "aes.attach: cannot keep the memory");
    return NULL;
  }
  state->mem = data;
  state->size = length;
  return NULL;
}

/* expand: key, nk, rk */
static napi_value js_expand(napi_env env, napi_callback_info info) {
  int32_t a[ARG_WORDS];
  AesState *state = reg_args(env, info, a);
  if (state == NULL) return NULL;
  int nk = a[1];
  if ((nk != 4 && nk != 6 && nk != 8) || !range_ok(state, a[0], nk * 4) || !range_ok(state, a[2], 16 * (nk + 7))) return out_of_range(env);
  expand(state->mem + a[0], nk, state->mem + a[2]);
  return NULL;
}

/* ecb: rk, rounds, ptr, n */
static napi_value js_ecb(napi_env env, napi_callback_info info) {
  int32_t a[ARG_WORDS];
  AesState *state = reg_args(env, info, a);
  if (state == NULL) return NULL;
  if (!rounds_ok(a[1]) || !range_ok(state, a[0], 16 * (a[1] + 1)) || !range_ok(state, a[2], (int64_t)a[3] * BLOCK)) return out_of_range(env);
  ecb(state->mem + a[0], a[1], state->mem + a[2], a[3]);
  return NULL;
}

/* cbcmac: rk, rounds, from, to, ptr, n */
static napi_value js_cbcmac(napi_env env, napi_callback_info info) {
  int32_t a[ARG_WORDS];
  AesState *state = reg_args(env, info, a);
  if (state == NULL) return NULL;
  if (!rounds_ok(a[1]) || !range_ok(state, a[0], 16 * (a[1] + 1)) || !range_ok(state, a[2], BLOCK) || !range_ok(state, a[3], BLOCK) ||
      !range_ok(state, a[4], (int64_t)a[5] * BLOCK))
    return out_of_range(env);
  cbcmac(state->mem + a[0], a[1], state->mem + a[2], state->mem + a[3], state->mem + a[4], a[5]);
  return NULL;
}

/*
 * cmac: rk, rounds, subkeys, from, ptr, len, xorEnd, to: the last step of a CMAC (RFC 4493 §2.4) over
 * `len` bytes at `ptr`, chained from `from`: when xorEnd is not 0, its block is first XORed into the
 * message's last 16 bytes (SIV's xorend, RFC 5297 §2.4); a partial or empty last block is padded with
 * 10* and takes K2, a whole one K1 (subkeys holds K1 ‖ K2). The padding is written in place after the
 * message, so the area must have room for it.
 */
static napi_value js_cmac(napi_env env, napi_callback_info info) {
  int32_t a[ARG_WORDS];
  AesState *state = reg_args(env, info, a);
  if (state == NULL) return NULL;
  int32_t rk = a[0], rounds = a[1], subkeys = a[2], from = a[3], ptr = a[4], len = a[5], xor_end = a[6], to = a[7];
  int64_t padded = len == 0 || len % BLOCK != 0 ? ((int64_t)len / BLOCK + 1) * BLOCK : len;
  if (!rounds_ok(rounds) || !range_ok(state, rk, 16 * (rounds + 1)) || !range_ok(state, subkeys, 2 * BLOCK) ||
      !range_ok(state, from, BLOCK) || !range_ok(state, to, BLOCK) || !range_ok(state, ptr, padded) ||
      (xor_end != 0 && (len < BLOCK || !range_ok(state, xor_end, BLOCK))))
    return out_of_range(env);
  uint8_t *m = state->mem + ptr;
  if (xor_end != 0) xor_block(m + len - BLOCK, state->mem + xor_end);
  int n = len / BLOCK;
  const uint8_t *subkey = state->mem + subkeys;
  if (len == 0 || len % BLOCK != 0) {
    m[len] = 0x80;
    n++;
    memset(m + len + 1, 0, (size_t)(n * BLOCK - len - 1));
    subkey += BLOCK;
  }
  xor_block(m + (size_t)(n - 1) * BLOCK, subkey);
  cbcmac(state->mem + rk, rounds, state->mem + from, state->mem + to, m, n);
  return NULL;
}

/* ctr: rk, rounds, counter, ptr, n */
static napi_value js_ctr(napi_env env, napi_callback_info info) {
  int32_t a[ARG_WORDS];
  AesState *state = reg_args(env, info, a);
  if (state == NULL) return NULL;
  if (!rounds_ok(a[1]) || !range_ok(state, a[0], 16 * (a[1] + 1)) || !range_ok(state, a[2], BLOCK) ||
      !range_ok(state, a[3], (int64_t)a[4] * BLOCK))
    return out_of_range(env);
  ctr(state->mem + a[0], a[1], state->mem + a[2], state->mem + a[3], a[4]);
  return NULL;
}

/* dbl() of RFC 4493 §2.3 / RFC 5297 §2.1, branch-free on the secret top bit. */
static void dbl_block(uint8_t *b) {
  uint8_t carry = (uint8_t)(b[0] >> 7);
  for (int i = 0; i < BLOCK - 1; i++) b[i] = (uint8_t)((b[i] << 1) | (b[i + 1] >> 7));
  b[BLOCK - 1] = (uint8_t)((b[BLOCK - 1] << 1) ^ (0x87 & (uint8_t)-carry));
}

/*
 * cmacPrepare: rk, rounds, to: K1 ‖ K2 (RFC 4493 §2.3: L = AES(0^128), K1 = dbl(L), K2 = dbl(K1)), then
 * CMAC(0^128) = AES(K1) (one whole zero block XOR K1), the first value of S2V (RFC 5297 §2.4): 48 bytes at `to`.
 */
AES_TARGET static napi_value js_cmac_prepare(napi_env env, napi_callback_info info) {
  int32_t a[ARG_WORDS];
  AesState *state = reg_args(env, info, a);
  if (state == NULL) return NULL;
  if (!rounds_ok(a[1]) || !range_ok(state, a[0], 16 * (a[1] + 1)) || !range_ok(state, a[2], 3 * BLOCK)) return out_of_range(env);
  const __m128i *rk = (const __m128i *)(state->mem + a[0]);
  uint8_t *out = state->mem + a[2];
  _mm_storeu_si128((__m128i *)out, encrypt_block(_mm_setzero_si128(), rk, a[1]));
  dbl_block(out);
  memcpy(out + BLOCK, out, BLOCK);
  dbl_block(out + BLOCK);
  _mm_storeu_si128((__m128i *)(out + 2 * BLOCK), encrypt_block(_mm_loadu_si128((const __m128i *)out), rk, a[1]));
  return NULL;
}

static int cpu_has_aes(void) {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  return (ecx & bit_AES) != 0 && (ecx & bit_SSE4_1) != 0;
}

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  /* The reference dies with the environment; only the struct is ours to free. */
  free(data);
}

void ntptsd_register_aes(napi_env env, napi_value exports) {
  if (!cpu_has_aes()) return;
  AesState *state = calloc(1, sizeof *state);
  if (state == NULL || napi_set_instance_data(env, state, free_state, NULL) != napi_ok) {
    free(state);
    return;
  }
  static const struct {
    const char *name;
    napi_callback fn;
  } functions[] = {{"aesAttach", js_attach}, {"aesExpand", js_expand}, {"aesEcb", js_ecb},
                   {"aesCbcmac", js_cbcmac}, {"aesCmac", js_cmac}, {"aesCtr", js_ctr}, {"aesCmacPrepare", js_cmac_prepare}};
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, state, &fn) != napi_ok) return;
    napi_set_named_property(env, exports, functions[i].name, fn);
  }
}

#else
/* No AES instructions known here: the module offers no AES, and JS keeps the WebAssembly engine. */
void ntptsd_register_aes(napi_env env, napi_value exports) {
  (void)env;
  (void)exports;
}
#endif
