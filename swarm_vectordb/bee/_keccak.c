/*
 * Keccak-256 of many 64-byte blocks at once: the inner loop of a Swarm BMT.
 *
 * Every node of a BMT is keccak256(left || right), 64 bytes, and the nodes of one
 * level are independent, so they are hashed several at a time: with AVX-512 each
 * 512-bit register holds the same lane of eight Keccak states, with AVX2 four. The
 * paths are chosen at run time (CPU and OS support); a scalar permutation does the
 * rest. NOOSPHERE_KECCAK_SIMD=avx512|avx2|none caps the choice (tests use it).
 *
 * A 64-byte message fits one 136-byte Keccak-256 block: lanes 0..7 take the message,
 * padding puts 0x01 at byte 64 (lane 8) and 0x80 at byte 135 (top of lane 16).
 * Ethereum's Keccak pads with 0x01, not SHA3's 0x06.
 *
 * Python API: keccak256_64(data) -> bytes; len(data) must be a multiple of 64, and
 * the result is the 32-byte digests of each 64-byte block, concatenated. simd()
 * names the vector path in use.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define HAVE_X86 1
#endif

static const uint64_t ROUND_CONSTANTS[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
    0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
    0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
    0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
    0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
    0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
    0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL,
};

/* rho offsets and pi destinations, walked along the pi cycle starting at lane 1 */
static const int RHO[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                            27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const int PI[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                           15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

static inline uint64_t rol64(uint64_t x, int s) { return (x << s) | (x >> (64 - s)); }

static void keccak_f1600(uint64_t a[25]) {
    uint64_t c[5], d, t, b;
    for (int round = 0; round < 24; round++) {
        for (int x = 0; x < 5; x++) c[x] = a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20];
        for (int x = 0; x < 5; x++) {
            d = c[(x + 4) % 5] ^ rol64(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) a[y + x] ^= d;
        }
        t = a[1];
        for (int i = 0; i < 24; i++) {
            b = a[PI[i]];
            a[PI[i]] = rol64(t, RHO[i]);
            t = b;
        }
        for (int y = 0; y < 25; y += 5) {
            for (int x = 0; x < 5; x++) c[x] = a[y + x];
            for (int x = 0; x < 5; x++) a[y + x] = c[x] ^ (~c[(x + 1) % 5] & c[(x + 2) % 5]);
        }
        a[0] ^= ROUND_CONSTANTS[round];
    }
}

static inline uint64_t load64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8); /* x86-64 and aarch64 Linux are little-endian, as Keccak lanes are */
    return v;
}

static void hash64_scalar(const unsigned char *in, unsigned char *out) {
    uint64_t a[25] = {0};
    for (int i = 0; i < 8; i++) a[i] = load64(in + 8 * i);
    a[8] ^= 0x01ULL;
    a[16] ^= 0x8000000000000000ULL;
    keccak_f1600(a);
    memcpy(out, a, 32);
}

#ifdef HAVE_X86
#define ROL4(x, s) _mm256_or_si256(_mm256_slli_epi64((x), (s)), _mm256_srli_epi64((x), 64 - (s)))

__attribute__((target("avx2"))) static void hash64_x4(const unsigned char *in,
                                                       unsigned char *out) {
    __m256i a[25], c[5], d, t, b;
    for (int i = 0; i < 25; i++) a[i] = _mm256_setzero_si256();
    for (int i = 0; i < 8; i++)
        a[i] = _mm256_set_epi64x((long long)load64(in + 192 + 8 * i),
                                 (long long)load64(in + 128 + 8 * i),
                                 (long long)load64(in + 64 + 8 * i), (long long)load64(in + 8 * i));
    a[8] = _mm256_set1_epi64x(0x01LL);
    a[16] = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    for (int round = 0; round < 24; round++) {
        for (int x = 0; x < 5; x++)
            c[x] = _mm256_xor_si256(
                _mm256_xor_si256(_mm256_xor_si256(a[x], a[x + 5]), _mm256_xor_si256(a[x + 10], a[x + 15])),
                a[x + 20]);
        for (int x = 0; x < 5; x++) {
            d = _mm256_xor_si256(c[(x + 4) % 5], ROL4(c[(x + 1) % 5], 1));
            for (int y = 0; y < 25; y += 5) a[y + x] = _mm256_xor_si256(a[y + x], d);
        }
        t = a[1];
        for (int i = 0; i < 24; i++) {
            b = a[PI[i]];
            a[PI[i]] = ROL4(t, RHO[i]);
            t = b;
        }
        for (int y = 0; y < 25; y += 5) {
            for (int x = 0; x < 5; x++) c[x] = a[y + x];
            for (int x = 0; x < 5; x++)
                a[y + x] = _mm256_xor_si256(c[x], _mm256_andnot_si256(c[(x + 1) % 5], c[(x + 2) % 5]));
        }
        a[0] = _mm256_xor_si256(a[0], _mm256_set1_epi64x((long long)ROUND_CONSTANTS[round]));
    }
    uint64_t lanes[4][4];
    for (int i = 0; i < 4; i++) _mm256_storeu_si256((__m256i *)lanes[i], a[i]);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 4; i++) memcpy(out + 32 * k + 8 * i, &lanes[i][k], 8);
}
#endif

#ifdef HAVE_X86
/* Eight states per register; AVX-512 has 64-bit rotates and three-input logic. */
__attribute__((target("avx512f"))) static void hash64_x8(const unsigned char *in,
                                                          unsigned char *out) {
    __m512i a[25], c[5], d, t, b;
    for (int i = 0; i < 25; i++) a[i] = _mm512_setzero_si512();
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_set_epi64(
            (long long)load64(in + 448 + 8 * i), (long long)load64(in + 384 + 8 * i),
            (long long)load64(in + 320 + 8 * i), (long long)load64(in + 256 + 8 * i),
            (long long)load64(in + 192 + 8 * i), (long long)load64(in + 128 + 8 * i),
            (long long)load64(in + 64 + 8 * i), (long long)load64(in + 8 * i));
    a[8] = _mm512_set1_epi64(0x01LL);
    a[16] = _mm512_set1_epi64((long long)0x8000000000000000ULL);
    for (int round = 0; round < 24; round++) {
        for (int x = 0; x < 5; x++) /* 0x96: a ^ b ^ c */
            c[x] = _mm512_ternarylogic_epi64(
                _mm512_ternarylogic_epi64(a[x], a[x + 5], a[x + 10], 0x96), a[x + 15], a[x + 20],
                0x96);
        for (int x = 0; x < 5; x++) {
            d = _mm512_xor_si512(c[(x + 4) % 5], _mm512_rol_epi64(c[(x + 1) % 5], 1));
            for (int y = 0; y < 25; y += 5) a[y + x] = _mm512_xor_si512(a[y + x], d);
        }
        t = a[1];
        for (int i = 0; i < 24; i++) {
            b = a[PI[i]];
            switch (RHO[i]) { /* the rotate takes an immediate */
#define ROT_CASE(n) case n: a[PI[i]] = _mm512_rol_epi64(t, n); break;
                ROT_CASE(1) ROT_CASE(2) ROT_CASE(3) ROT_CASE(6) ROT_CASE(8) ROT_CASE(10)
                ROT_CASE(14) ROT_CASE(15) ROT_CASE(18) ROT_CASE(20) ROT_CASE(21) ROT_CASE(25)
                ROT_CASE(27) ROT_CASE(28) ROT_CASE(36) ROT_CASE(39) ROT_CASE(41) ROT_CASE(43)
                ROT_CASE(44) ROT_CASE(45) ROT_CASE(55) ROT_CASE(56) ROT_CASE(61) ROT_CASE(62)
#undef ROT_CASE
            }
            t = b;
        }
        for (int y = 0; y < 25; y += 5) {
            for (int x = 0; x < 5; x++) c[x] = a[y + x];
            for (int x = 0; x < 5; x++) /* 0xD2: a ^ (~b & c) */
                a[y + x] = _mm512_ternarylogic_epi64(c[x], c[(x + 1) % 5], c[(x + 2) % 5], 0xD2);
        }
        a[0] = _mm512_xor_si512(a[0], _mm512_set1_epi64((long long)ROUND_CONSTANTS[round]));
    }
    uint64_t lanes[4][8];
    for (int i = 0; i < 4; i++) _mm512_storeu_si512((void *)lanes[i], a[i]);
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < 4; i++) memcpy(out + 32 * k + 8 * i, &lanes[i][k], 8);
}

/* CPUID may list AVX-512 while the OS (or hypervisor) does not save its registers:
 * require XCR0 to enable the opmask and both halves of the ZMM state too. */
static int os_saves_avx512(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (eax & 0xE6) == 0xE6;
}
#endif

static int use_avx2 = 0;
static int use_avx512 = 0;

static void hash_blocks(const unsigned char *in, Py_ssize_t blocks, unsigned char *out) {
    Py_ssize_t i = 0;
#ifdef HAVE_X86
    if (use_avx512)
        for (; i + 8 <= blocks; i += 8) hash64_x8(in + 64 * i, out + 32 * i);
    if (use_avx2)
        for (; i + 4 <= blocks; i += 4) hash64_x4(in + 64 * i, out + 32 * i);
#endif
    for (; i < blocks; i++) hash64_scalar(in + 64 * i, out + 32 * i);
}

static PyObject *keccak256_64(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len % 64 != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "input length must be a multiple of 64");
        return NULL;
    }
    Py_ssize_t blocks = view.len / 64;
    PyObject *result = PyBytes_FromStringAndSize(NULL, blocks * 32);
    if (result == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    hash_blocks((const unsigned char *)view.buf, blocks, out);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return result;
}

static PyObject *simd(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(use_avx512 ? "avx512" : use_avx2 ? "avx2" : "none");
}

static PyMethodDef METHODS[] = {
    {"keccak256_64", keccak256_64, METH_O,
     "Keccak-256 of each 64-byte block of a bytes-like object, digests concatenated."},
    {"simd", simd, METH_NOARGS, "The vector path in use: 'avx512', 'avx2' or 'none'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_keccak",
                                    "Batched Keccak-256 of 64-byte blocks (BMT nodes).", -1,
                                    METHODS};

PyMODINIT_FUNC PyInit__keccak(void) {
#ifdef HAVE_X86
    __builtin_cpu_init();
    use_avx2 = __builtin_cpu_supports("avx2");
    use_avx512 = __builtin_cpu_supports("avx512f") && os_saves_avx512();
    const char *want = getenv("NOOSPHERE_KECCAK_SIMD");
    if (want != NULL && *want != '\0') { /* tests force each path */
        use_avx512 = use_avx512 && strcmp(want, "avx512") == 0;
        use_avx2 = use_avx2 && strcmp(want, "none") != 0;
    }
#endif
    return PyModule_Create(&MODULE);
}
