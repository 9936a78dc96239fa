/* blake3_avx2.c - BLAKE3 hash_many over eight inputs at once with 256-bit
 * AVX2 vectors. Built with -mavx2; x86-64 only (the rounds use all sixteen
 * ymm registers, which 32-bit x86 lacks).
 *
 * Layout: vector i holds state word i of all eight inputs, so the rounds are
 * plain vertical adds, xors and rotates. Each 64-byte block of the eight
 * inputs is loaded as sixteen 256-bit rows and transposed (two 8x8
 * transposes of 32-bit words, intrinsics) into the sixteen message-word
 * vectors, m[j] = word j of inputs 0..7.
 *
 * The seven rounds are GNU inline asm (AT&T syntax) with the state pinned to
 * ymm0..ymm15. Why: with sixteen state vectors in sixteen registers, GCC's
 * register allocator spilled state right after computing it and reloaded it
 * on the next instruction, putting store-to-load forwarding on the critical
 * path of G; the pinned version runs 12% faster on the development machine
 * (3.95 vs 3.53 GB/s, data in cache), level with the blake3 package. The
 * 12- and 7-bit rotations need one temporary: v12's register, parked in a
 * scratch slot for those two steps of each half round. Fewer than eight
 * inputs and single compressions go to the SSE4.1 code (the AVX2 backend
 * requires SSE4.1). */
#include "blake3_impl.h"

#ifdef CB_HAVE_AVX2
#include <immintrin.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Byte shuffles rotating each 32-bit word right by 16 and by 8. */
static const uint8_t ROT16_MASK[32] __attribute__((aligned(32))) = {
    2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
    2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
static const uint8_t ROT8_MASK[32] __attribute__((aligned(32))) = {
    1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
    1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12};

/* Assembler text for one step on ymm registers given by number. Operand
 * order is AT&T: sources first, destination last. */
#define R(n) "%%ymm" #n
#define ADDM(a, x) "vpaddd " #x "*32(%[m]), " R(a) ", " R(a) "\n\t" /* a += m[x] */
#define ADD(dst, src) "vpaddd " R(src) ", " R(dst) ", " R(dst) "\n\t"
#define XOR(dst, src) "vpxor " R(src) ", " R(dst) ", " R(dst) "\n\t"
#define SHUF(dst, mask) "vpshufb (%[" #mask "]), " R(dst) ", " R(dst) "\n\t"
#define ROTR(b, n, t)                                        \
    "vpsrld $" #n ", " R(b) ", " R(t) "\n\t"                 \
    "vpslld $(32-" #n "), " R(b) ", " R(b) "\n\t"            \
    "vpor " R(t) ", " R(b) ", " R(b) "\n\t"
#define PARK12 "vmovdqa " R(12) ", (%[s])\n\t"
#define UNPARK12 "vmovdqa (%[s]), " R(12) "\n\t"

/* Half a round: G (spec 2.2) on four (a, b, c, d) word quadruples at once,
 * step by step, with message words x_i, y_i. */
#define HALF(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, \
             x0, y0, x1, y1, x2, y2, x3, y3)                                \
    ADDM(a0, x0) ADDM(a1, x1) ADDM(a2, x2) ADDM(a3, x3)                     \
    ADD(a0, b0) ADD(a1, b1) ADD(a2, b2) ADD(a3, b3)                         \
    XOR(d0, a0) XOR(d1, a1) XOR(d2, a2) XOR(d3, a3)                         \
    SHUF(d0, r16) SHUF(d1, r16) SHUF(d2, r16) SHUF(d3, r16)                 \
    ADD(c0, d0) ADD(c1, d1) ADD(c2, d2) ADD(c3, d3)                         \
    XOR(b0, c0) XOR(b1, c1) XOR(b2, c2) XOR(b3, c3)                         \
    PARK12                                                                  \
    ROTR(b0, 12, 12) ROTR(b1, 12, 12) ROTR(b2, 12, 12) ROTR(b3, 12, 12)     \
    UNPARK12                                                                \
    ADDM(a0, y0) ADDM(a1, y1) ADDM(a2, y2) ADDM(a3, y3)                     \
    ADD(a0, b0) ADD(a1, b1) ADD(a2, b2) ADD(a3, b3)                         \
    XOR(d0, a0) XOR(d1, a1) XOR(d2, a2) XOR(d3, a3)                         \
    SHUF(d0, r8) SHUF(d1, r8) SHUF(d2, r8) SHUF(d3, r8)                     \
    ADD(c0, d0) ADD(c1, d1) ADD(c2, d2) ADD(c3, d3)                         \
    XOR(b0, c0) XOR(b1, c1) XOR(b2, c2) XOR(b3, c3)                         \
    PARK12                                                                  \
    ROTR(b0, 7, 12) ROTR(b1, 7, 12) ROTR(b2, 7, 12) ROTR(b3, 7, 12)         \
    UNPARK12

/* A round: columns, then diagonals; s0..s15 = that round's message order
 * (the rows of B3_SCHEDULE, spelled out because the assembler text needs
 * literals; the tests compare against the portable code, which reads
 * B3_SCHEDULE itself). */
#define ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) \
    HALF(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,                     \
         s0, s1, s2, s3, s4, s5, s6, s7)                                           \
    HALF(0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14,                     \
         s8, s9, s10, s11, s12, s13, s14, s15)

#define LOAD2(r0, r1, base)                              \
    "vmovdqu " #r0 "*32(%[" #base "]), " R(r0) "\n\t" \
    "vmovdqu " #r1 "*32(%[" #base "]), " R(r1) "\n\t"
/* c[k] goes to ymm(8 + k): register r0 loads from offset (r0 - 8) * 32. */
#define LOADC2(r0, r1) \
    "vmovdqu " #r0 "*32-256(%[c]), " R(r0) "\n\t" "vmovdqu " #r1 "*32-256(%[c]), " R(r1) "\n\t"
#define STORE2(r0, r1) \
    "vmovdqu " R(r0) ", " #r0 "*32(%[h])\n\t" "vmovdqu " R(r1) ", " #r1 "*32(%[h])\n\t"

/* h <- first half of compress(h, m) for eight inputs: state rows 2 and 3
 * come from c (IV words, counter low/high, block length, flags). */
static void compress8(__m256i h[8], const __m256i c[8], const __m256i m[16]) {
    __m256i park;
    __asm__ volatile(
        LOAD2(0, 1, h) LOAD2(2, 3, h) LOAD2(4, 5, h) LOAD2(6, 7, h)
        LOADC2(8, 9) LOADC2(10, 11) LOADC2(12, 13) LOADC2(14, 15)
        ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        ROUND(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
        ROUND(3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1)
        ROUND(10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6)
        ROUND(12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4)
        ROUND(9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7)
        ROUND(11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13)
        "vpxor " R(8) ", " R(0) ", " R(0) "\n\t" "vpxor " R(9) ", " R(1) ", " R(1) "\n\t"
        "vpxor " R(10) ", " R(2) ", " R(2) "\n\t" "vpxor " R(11) ", " R(3) ", " R(3) "\n\t"
        "vpxor " R(12) ", " R(4) ", " R(4) "\n\t" "vpxor " R(13) ", " R(5) ", " R(5) "\n\t"
        "vpxor " R(14) ", " R(6) ", " R(6) "\n\t" "vpxor " R(15) ", " R(7) ", " R(7) "\n\t"
        STORE2(0, 1) STORE2(2, 3) STORE2(4, 5) STORE2(6, 7)
        :
        : [h] "r"(h), [c] "r"(c), [m] "r"(m), [s] "r"(&park), [r16] "r"(ROT16_MASK),
          [r8] "r"(ROT8_MASK)
        : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* In place 8x8 transpose of 32-bit words: x[j] word i <-> x[i] word j. */
ALWAYS_INLINE void transpose8(__m256i x[8]) {
    __m256i t0 = _mm256_unpacklo_epi32(x[0], x[1]), t1 = _mm256_unpackhi_epi32(x[0], x[1]);
    __m256i t2 = _mm256_unpacklo_epi32(x[2], x[3]), t3 = _mm256_unpackhi_epi32(x[2], x[3]);
    __m256i t4 = _mm256_unpacklo_epi32(x[4], x[5]), t5 = _mm256_unpackhi_epi32(x[4], x[5]);
    __m256i t6 = _mm256_unpacklo_epi32(x[6], x[7]), t7 = _mm256_unpackhi_epi32(x[6], x[7]);
    /* uK holds words K and K+4 of rows 0..3 (u0..u3) or rows 4..7 (u4..u7). */
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    x[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    x[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    x[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    x[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    x[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    x[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    x[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    x[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

static void hash8_lanes(const uint8_t *const lanes[8], size_t blocks, const uint32_t key[8],
                        uint64_t counter, int inc, uint8_t flags, uint8_t flags_start,
                        uint8_t flags_end, uint8_t *out) {
    __m256i h[8], m[16], c[8];
    for (int i = 0; i < 8; i++) h[i] = _mm256_set1_epi32((int)key[i]);
    uint32_t lo[8], hi[8];
    for (int j = 0; j < 8; j++) {
        uint64_t ctr = counter + (inc ? (uint64_t)j : 0);
        lo[j] = (uint32_t)ctr;
        hi[j] = (uint32_t)(ctr >> 32);
    }
    for (int i = 0; i < 4; i++) c[i] = _mm256_set1_epi32((int)B3_IV[i]);
    c[4] = _mm256_loadu_si256((const __m256i *)lo);
    c[5] = _mm256_loadu_si256((const __m256i *)hi);
    c[6] = _mm256_set1_epi32(B3_BLOCK_LEN);
    for (size_t b = 0; b < blocks; b++) {
        const size_t off = b * B3_BLOCK_LEN;
        for (int j = 0; j < 8; j++) {
            /* Two blocks ahead in each lane: eight interleaved streams are
             * more than the hardware prefetcher keeps up with (measured +7%
             * on data from RAM). Prefetches never fault, so running past the
             * end of an input is harmless. */
            _mm_prefetch((const char *)(lanes[j] + off + 2 * B3_BLOCK_LEN), _MM_HINT_T0);
            m[j] = _mm256_loadu_si256((const __m256i *)(lanes[j] + off));
            m[8 + j] = _mm256_loadu_si256((const __m256i *)(lanes[j] + off + 32));
        }
        transpose8(&m[0]);
        transpose8(&m[8]);
        uint8_t f = flags;
        if (b == 0) f |= flags_start;
        if (b + 1 == blocks) f |= flags_end;
        c[7] = _mm256_set1_epi32(f);
        compress8(h, c, m);
    }
    transpose8(h);
    for (int j = 0; j < 8; j++) _mm256_storeu_si256((__m256i *)(out + 32 * j), h[j]);
}

void cb_b3_hash_many_avx2(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                          const uint32_t key[8], uint64_t counter, int increment_counter,
                          uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out) {
    while (n >= 8) {
        const uint8_t *lanes[8];
        for (size_t j = 0; j < 8; j++) lanes[j] = input + j * stride;
        hash8_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start, flags_end,
                    out);
        input += 8 * stride;
        out += 8 * 32;
        n -= 8;
        if (increment_counter) counter += 8;
    }
    if (n >= 3) {
        /* A partial group: one 8-way pass with the spare lanes re-reading
         * input 0 (their results are dropped) is faster than 4-way plus
         * single compressions for 3 or more inputs. */
        const uint8_t *lanes[8];
        for (size_t j = 0; j < 8; j++) lanes[j] = input + (j < n ? j : 0) * stride;
        uint8_t tmp[8 * 32];
        hash8_lanes(lanes, blocks, key, counter, increment_counter, flags, flags_start, flags_end,
                    tmp);
        memcpy(out, tmp, n * 32);
        return;
    }
    cb_b3_hash_many_sse41(input, stride, n, blocks, key, counter, increment_counter, flags,
                          flags_start, flags_end, out);
}
#endif
