// See include/cws_fastpaths.h. Written for this project from the published algorithm.
#include "cws_fastpaths.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

int cws_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}

__attribute__((target("avx2")))
size_t cws_mask_avx2(uint8_t *p, size_t n, uint32_t key) {
    const __m256i k = _mm256_set1_epi32((int)key);
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(p + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(p + i + 96));
        _mm256_storeu_si256((__m256i *)(p + i), _mm256_xor_si256(a, k));
        _mm256_storeu_si256((__m256i *)(p + i + 32), _mm256_xor_si256(b, k));
        _mm256_storeu_si256((__m256i *)(p + i + 64), _mm256_xor_si256(c, k));
        _mm256_storeu_si256((__m256i *)(p + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
        _mm256_storeu_si256((__m256i *)(p + i), _mm256_xor_si256(a, k));
    }
    return i;
}

// Error flags: each names a pair of adjacent bytes (first, second) that cannot occur in valid
// UTF-8. A pair is an error when all three lookups (first's high nibble, first's low nibble,
// second's high nibble) agree on at least one flag.
enum {
    TOO_SHORT = 1 << 0,       // lead followed by a non-continuation (11______ 0_______ / 11______ 11______)
    TOO_LONG = 1 << 1,        // ASCII followed by a continuation (0_______ 10______)
    OVERLONG_3 = 1 << 2,      // 11100000 100_____
    TOO_LARGE = 1 << 3,       // 11110100 1001____ / 11110100 101_____, and F5+ leads
    SURROGATE = 1 << 4,       // 11101101 101_____
    OVERLONG_2 = 1 << 5,      // 1100000_ 10______
    TOO_LARGE_1000 = 1 << 6,  // 11110101+ 1000____
    OVERLONG_4 = 1 << 6,      // 11110000 1000____ (shares the bit: same second-byte class)
    TWO_CONTS = 1 << 7,       // 10______ 10______ (allowed only as the 3rd/4th byte of a character)
    CARRY = TOO_SHORT | TOO_LONG | TWO_CONTS,
};

__attribute__((target("avx2")))
static inline __m256i lookup16(__m256i table, __m256i nibbles) { return _mm256_shuffle_epi8(table, nibbles); }

// The 32 bytes ending N bytes before the end of `input`: previous block's tail, then input's head.
#define PREV(input, prev_input, N) \
    _mm256_alignr_epi8((input), _mm256_permute2x128_si256((prev_input), (input), 0x21), 16 - (N))

// The three lookup tables, indexed by a nibble.
static const uint8_t byte_1_high_table[16] = {
    // 0_______: ASCII first byte
    TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG, TOO_LONG,
    // 10______: continuation first byte
    TWO_CONTS, TWO_CONTS, TWO_CONTS, TWO_CONTS,
    // 1100____, 1101____: 2-byte lead
    TOO_SHORT | OVERLONG_2,
    TOO_SHORT,
    // 1110____: 3-byte lead
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    // 1111____: 4-byte (or invalid) lead
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
};
static const uint8_t byte_1_low_table[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,  // ____0000
    CARRY | OVERLONG_2,                            // ____0001
    CARRY,                                         // ____0010
    CARRY,                                         // ____0011
    CARRY | TOO_LARGE,                             // ____0100
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____0101
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____0110
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____0111
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1000
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1001
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1010
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1011
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1100
    CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,  // ____1101
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1110
    CARRY | TOO_LARGE | TOO_LARGE_1000,            // ____1111
};
static const uint8_t byte_2_high_table[16] = {
    // ________ 0_______: second byte ASCII
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
    // ________ 1000____
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 | OVERLONG_4,
    // ________ 1001____
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
    // ________ 101_____
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    // ________ 11______: second byte is a lead
    TOO_SHORT, TOO_SHORT, TOO_SHORT, TOO_SHORT,
};

__attribute__((target("avx2")))
static inline __m256i table(const uint8_t t[16]) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

__attribute__((target("avx2")))
static inline __m256i check_block(__m256i input, __m256i prev_input) {
    const __m256i byte_1_high = table(byte_1_high_table);
    const __m256i byte_1_low = table(byte_1_low_table);
    const __m256i byte_2_high = table(byte_2_high_table);
    const __m256i nibble = _mm256_set1_epi8(0x0F);

    __m256i prev1 = PREV(input, prev_input, 1);
    __m256i special = _mm256_and_si256(
        _mm256_and_si256(lookup16(byte_1_high, _mm256_and_si256(_mm256_srli_epi16(prev1, 4), nibble)),
                         lookup16(byte_1_low, _mm256_and_si256(prev1, nibble))),
        lookup16(byte_2_high, _mm256_and_si256(_mm256_srli_epi16(input, 4), nibble)));

    // Two continuations in a row are legal only as the 3rd or 4th byte of a character: when the
    // byte two back is a 3- or 4-byte lead (>= E0) or three back is a 4-byte lead (>= F0).
    __m256i prev2 = PREV(input, prev_input, 2);
    __m256i prev3 = PREV(input, prev_input, 3);
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must23 = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must23, special);
}

// Nonzero where the block ends inside a character: a lead in the last 3 positions whose
// character would need bytes beyond the block.
__attribute__((target("avx2")))
static inline __m256i incomplete_tail(__m256i input) {
    const __m256i max_value = _mm256_setr_epi8(
        (char)255, (char)255, (char)255, (char)255, (char)255, (char)255, (char)255, (char)255,
        (char)255, (char)255, (char)255, (char)255, (char)255, (char)255, (char)255, (char)255,
        (char)255, (char)255, (char)255, (char)255, (char)255, (char)255, (char)255, (char)255,
        (char)255, (char)255, (char)255, (char)255, (char)255,
        (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
    return _mm256_subs_epu8(input, max_value);
}

__attribute__((target("avx2")))
int cws_utf8_valid_avx2(const uint8_t *p, size_t n) {
    __m256i error = _mm256_setzero_si256();
    __m256i prev_input = _mm256_setzero_si256();
    __m256i prev_incomplete = _mm256_setzero_si256();
    size_t i = 0;
    while (i + 32 <= n) {
        // Runs of ASCII, 128 bytes per test, when no character is pending from the last block.
        if (i + 128 <= n && _mm256_testz_si256(prev_incomplete, prev_incomplete)) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(p + i + 32));
            __m256i c = _mm256_loadu_si256((const __m256i *)(p + i + 64));
            __m256i d = _mm256_loadu_si256((const __m256i *)(p + i + 96));
            if (_mm256_movemask_epi8(_mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d))) == 0) {
                prev_input = d;
                i += 128;
                continue;
            }
        }
        __m256i input = _mm256_loadu_si256((const __m256i *)(p + i));
        if (_mm256_movemask_epi8(input) == 0) {
            // All ASCII: valid unless the previous block ended inside a character.
            error = _mm256_or_si256(error, prev_incomplete);
        } else {
            error = _mm256_or_si256(error, check_block(input, prev_input));
            prev_incomplete = incomplete_tail(input);
        }
        prev_input = input;
        i += 32;
        if ((i & 1023) == 0 && !_mm256_testz_si256(error, error)) return 0;  // fail fast on long inputs
    }
    if (i < n) {
        // The last partial block, padded with ASCII zeros: a character cut by the end shows as TOO_SHORT.
        uint8_t tail[32];
        memset(tail, 0, sizeof tail);
        memcpy(tail, p + i, n - i);
        __m256i input = _mm256_loadu_si256((const __m256i *)tail);
        error = _mm256_or_si256(error, check_block(input, prev_input));
        prev_incomplete = incomplete_tail(input);
    }
    error = _mm256_or_si256(error, prev_incomplete);
    return _mm256_testz_si256(error, error) ? 1 : 0;
}

#else  // not x86: the Swift kernels are used.

int cws_has_avx2(void) { return 0; }
size_t cws_mask_avx2(uint8_t *p, size_t n, uint32_t key) { (void)p; (void)n; (void)key; return 0; }
int cws_utf8_valid_avx2(const uint8_t *p, size_t n) { (void)p; (void)n; return 0; }

#endif
