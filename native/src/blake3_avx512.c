/* blake3_avx512.c - BLAKE3 hash_many over sixteen inputs at once with
 * 512-bit AVX-512F vectors. Built with -mavx512f (hashes.cmake gives this
 * file alone that flag); x86-64 only. The dispatch code selects it only when
 * cpuid reports AVX-512F and the OS saves the opmask and all 32 ZMM
 * registers (XCR0 bits 5..7, read with xgetbv; see cpu_features.c).
 *
 * Layout as in the AVX2 backend: vector i holds state word i of all sixteen
 * inputs, so the rounds are vertical adds, xors and rotates. What AVX-512
 * adds besides the width: a rotate instruction (vprord), so each of G's four
 * rotations is one instruction, and 32 vector registers, so the 16 state
 * vectors and the 16 message-word vectors all stay in registers. The rounds
 * are GNU inline asm (AT&T) with that allocation pinned: GCC's own schedule
 * of the same instructions ran about 4% slower.
 *
 * Each load takes half a block (8 words) of input p and of input p + 8; a
 * transpose within each 256-bit half and a two-source permute turn the
 * sixteen inputs' block into the sixteen message-word vectors. The
 * resulting CVs are transposed back (a 16x16 transpose, half of it padding).
 * A partial group of 9..15 inputs runs one 16-way pass with the spare lanes
 * re-reading input 0 (results dropped); 8 or fewer go to the AVX2 code (so
 * this backend requires AVX2 too), and single compressions to the SSE4.1
 * code, as for the AVX2 backend. Nothing allocates; the vectors live on the
 * stack. */
#include "blake3_impl.h"

#ifdef CB_HAVE_AVX512
#include <immintrin.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Assembler text for one step on zmm registers given by number (AT&T
 * operand order: sources first, destination last). State word i lives in
 * zmm i, message word x in zmm(16 + x): all 32 registers, no temporaries,
 * since vprord rotates in place. */
#define Z(n) "%%zmm" #n
#define MR0 Z(16)
#define MR1 Z(17)
#define MR2 Z(18)
#define MR3 Z(19)
#define MR4 Z(20)
#define MR5 Z(21)
#define MR6 Z(22)
#define MR7 Z(23)
#define MR8 Z(24)
#define MR9 Z(25)
#define MR10 Z(26)
#define MR11 Z(27)
#define MR12 Z(28)
#define MR13 Z(29)
#define MR14 Z(30)
#define MR15 Z(31)
#define ADDM(a, x) "vpaddd " MR##x ", " Z(a) ", " Z(a) "\n\t" /* a += m[x] */
#define ADD(dst, src) "vpaddd " Z(src) ", " Z(dst) ", " Z(dst) "\n\t"
#define XOR(dst, src) "vpxord " Z(src) ", " Z(dst) ", " Z(dst) "\n\t"
#define ROR(r, n) "vprord $" #n ", " Z(r) ", " Z(r) "\n\t"

/* Half a round: G (spec 2.2) on four (a, b, c, d) quadruples, step by step
 * across the four. The message word is added to a before b is (a + m does
 * not wait for b's rotation, shortening each chain). Pinned in asm because
 * GCC's own schedule of the same instructions ran 3-5% slower here. */
#define HALF(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, c3, d3, \
             x0, y0, x1, y1, x2, y2, x3, y3)                                \
    ADDM(a0, x0) ADDM(a1, x1) ADDM(a2, x2) ADDM(a3, x3)                     \
    ADD(a0, b0) ADD(a1, b1) ADD(a2, b2) ADD(a3, b3)                         \
    XOR(d0, a0) XOR(d1, a1) XOR(d2, a2) XOR(d3, a3)                         \
    ROR(d0, 16) ROR(d1, 16) ROR(d2, 16) ROR(d3, 16)                         \
    ADD(c0, d0) ADD(c1, d1) ADD(c2, d2) ADD(c3, d3)                         \
    XOR(b0, c0) XOR(b1, c1) XOR(b2, c2) XOR(b3, c3)                         \
    ROR(b0, 12) ROR(b1, 12) ROR(b2, 12) ROR(b3, 12)                         \
    ADDM(a0, y0) ADDM(a1, y1) ADDM(a2, y2) ADDM(a3, y3)                     \
    ADD(a0, b0) ADD(a1, b1) ADD(a2, b2) ADD(a3, b3)                         \
    XOR(d0, a0) XOR(d1, a1) XOR(d2, a2) XOR(d3, a3)                         \
    ROR(d0, 8) ROR(d1, 8) ROR(d2, 8) ROR(d3, 8)                             \
    ADD(c0, d0) ADD(c1, d1) ADD(c2, d2) ADD(c3, d3)                         \
    XOR(b0, c0) XOR(b1, c1) XOR(b2, c2) XOR(b3, c3)                         \
    ROR(b0, 7) ROR(b1, 7) ROR(b2, 7) ROR(b3, 7)

/* A round: columns, then diagonals; s0..s15 = that round's message order
 * (the rows of B3_SCHEDULE, spelled out because the assembler text needs
 * literals; the tests compare against the portable code, which reads
 * B3_SCHEDULE itself). */
#define ROUND(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15) \
    HALF(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,                     \
         s0, s1, s2, s3, s4, s5, s6, s7)                                           \
    HALF(0, 5, 10, 15, 1, 6, 11, 12, 2, 7, 8, 13, 3, 4, 9, 14,                     \
         s8, s9, s10, s11, s12, s13, s14, s15)

#define LD(r, base, i) "vmovdqu64 " #i "*64(%[" #base "]), " Z(r) "\n\t"

#define ST(r, i) "vmovdqu64 " Z(r) ", " #i "*64(%[h])\n\t"

/* A register variable ties each message word to the register the text
 * names, so the words go from the transpose straight into zmm16..31. (The
 * CV and the constant rows come through memory: asm takes at most 30
 * operands.) */
#define PIN(name, reg, val) register __m512i name __asm__(reg) = (val)

/* h <- first half of compress(h, m) for sixteen inputs; c holds state rows
 * 2 and 3 (IV words, counter low/high, block length, flags). */
ALWAYS_INLINE void compress16(__m512i h[8], const __m512i c[8], const __m512i m[16]) {
    PIN(m0, "zmm16", m[0]); PIN(m1, "zmm17", m[1]); PIN(m2, "zmm18", m[2]);
    PIN(m3, "zmm19", m[3]); PIN(m4, "zmm20", m[4]); PIN(m5, "zmm21", m[5]);
    PIN(m6, "zmm22", m[6]); PIN(m7, "zmm23", m[7]); PIN(m8, "zmm24", m[8]);
    PIN(m9, "zmm25", m[9]); PIN(m10, "zmm26", m[10]); PIN(m11, "zmm27", m[11]);
    PIN(m12, "zmm28", m[12]); PIN(m13, "zmm29", m[13]); PIN(m14, "zmm30", m[14]);
    PIN(m15, "zmm31", m[15]);
    __asm__ volatile(
        LD(0, h, 0) LD(1, h, 1) LD(2, h, 2) LD(3, h, 3)
        LD(4, h, 4) LD(5, h, 5) LD(6, h, 6) LD(7, h, 7)
        LD(8, c, 0) LD(9, c, 1) LD(10, c, 2) LD(11, c, 3)
        LD(12, c, 4) LD(13, c, 5) LD(14, c, 6) LD(15, c, 7)
        ROUND(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        ROUND(2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
        ROUND(3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1)
        ROUND(10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6)
        ROUND(12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4)
        ROUND(9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7)
        ROUND(11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13)
        XOR(0, 8) XOR(1, 9) XOR(2, 10) XOR(3, 11)
        XOR(4, 12) XOR(5, 13) XOR(6, 14) XOR(7, 15)
        ST(0, 0) ST(1, 1) ST(2, 2) ST(3, 3) ST(4, 4) ST(5, 5) ST(6, 6) ST(7, 7)
        :
        : [h] "r"(h), [c] "r"(c), "v"(m0), "v"(m1), "v"(m2), "v"(m3), "v"(m4), "v"(m5),
          "v"(m6), "v"(m7), "v"(m8), "v"(m9), "v"(m10), "v"(m11), "v"(m12), "v"(m13),
          "v"(m14), "v"(m15)
        : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

/* In place 16x16 transpose of 32-bit words: x[j] word i <-> x[i] word j.
 * Per 128-bit lane, unpacks gather word w of four rows; then two rounds of
 * 128-bit lane shuffles put lane L of rows 4g..4g+3 into lane g. */
ALWAYS_INLINE void transpose16(__m512i x[16]) {
    __m512i t[16], u[16];
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_epi32(x[2 * k], x[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(x[2 * k], x[2 * k + 1]);
    }
    /* u[4g + w], 128-bit lane L: word 4L + w of rows 4g..4g+3. */
    for (int g4 = 0; g4 < 16; g4 += 4) {
        u[g4 + 0] = _mm512_unpacklo_epi64(t[g4], t[g4 + 2]);
        u[g4 + 1] = _mm512_unpackhi_epi64(t[g4], t[g4 + 2]);
        u[g4 + 2] = _mm512_unpacklo_epi64(t[g4 + 1], t[g4 + 3]);
        u[g4 + 3] = _mm512_unpackhi_epi64(t[g4 + 1], t[g4 + 3]);
    }
    for (int w = 0; w < 4; w++) {
        __m512i lo01 = _mm512_shuffle_i32x4(u[w], u[4 + w], 0x44);  /* lanes 0,1 | 0,1 */
        __m512i hi01 = _mm512_shuffle_i32x4(u[w], u[4 + w], 0xEE);  /* lanes 2,3 | 2,3 */
        __m512i lo23 = _mm512_shuffle_i32x4(u[8 + w], u[12 + w], 0x44);
        __m512i hi23 = _mm512_shuffle_i32x4(u[8 + w], u[12 + w], 0xEE);
        x[w] = _mm512_shuffle_i32x4(lo01, lo23, 0x88);      /* lane 0 of each */
        x[4 + w] = _mm512_shuffle_i32x4(lo01, lo23, 0xDD);  /* lane 1 */
        x[8 + w] = _mm512_shuffle_i32x4(hi01, hi23, 0x88);  /* lane 2 */
        x[12 + w] = _mm512_shuffle_i32x4(hi01, hi23, 0xDD); /* lane 3 */
    }
}

/* m[w] <- message word w of the block at offset off of all sixteen inputs.
 * Each load puts half a block (8 words) of input p and of input p + 8 side
 * by side in one vector, which does the first step of the transpose for
 * free; an 8x8 transpose within each 256-bit half and one two-source
 * permute then finish it (16 fewer shuffles per block than transpose16). */
ALWAYS_INLINE void load_msg16(const uint8_t *const lanes[16], size_t off, __m512i m[16]) {
    const __m512i lo_idx = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i hi_idx = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (int hf = 0; hf < 2; hf++) {
        __m512i z[8], t[8], u[8];
        for (int p = 0; p < 8; p++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(lanes[p] + off + 32 * hf));
            __m256i b =
                _mm256_loadu_si256((const __m256i *)(const void *)(lanes[p + 8] + off + 32 * hf));
            z[p] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
        }
        for (int k = 0; k < 4; k++) {
            t[2 * k] = _mm512_unpacklo_epi32(z[2 * k], z[2 * k + 1]);
            t[2 * k + 1] = _mm512_unpackhi_epi32(z[2 * k], z[2 * k + 1]);
        }
        /* u[4g + w], 128-bit lane L: word 8hf + 4(L % 2) + w of inputs
         * 4g..4g+3 (L < 2) or 8+4g..8+4g+3 (L >= 2). */
        for (int g4 = 0; g4 < 8; g4 += 4) {
            u[g4 + 0] = _mm512_unpacklo_epi64(t[g4], t[g4 + 2]);
            u[g4 + 1] = _mm512_unpackhi_epi64(t[g4], t[g4 + 2]);
            u[g4 + 2] = _mm512_unpacklo_epi64(t[g4 + 1], t[g4 + 3]);
            u[g4 + 3] = _mm512_unpackhi_epi64(t[g4 + 1], t[g4 + 3]);
        }
        for (int w = 0; w < 4; w++) {
            m[8 * hf + w] = _mm512_permutex2var_epi64(u[w], lo_idx, u[4 + w]);
            m[8 * hf + 4 + w] = _mm512_permutex2var_epi64(u[w], hi_idx, u[4 + w]);
        }
    }
}

static void hash16_lanes(const uint8_t *const lanes[16], size_t ahead, size_t blocks,
                         const uint32_t key[8], uint64_t counter, int inc, uint8_t flags,
                         uint8_t flags_start, uint8_t flags_end, uint8_t *out) {
    __m512i h[8], m[16], c[8];
    for (int i = 0; i < 8; i++) h[i] = _mm512_set1_epi32((int)key[i]);
    uint32_t lo[16], hi[16];
    for (int j = 0; j < 16; j++) {
        uint64_t ctr = counter + (inc ? (uint64_t)j : 0);
        lo[j] = (uint32_t)ctr;
        hi[j] = (uint32_t)(ctr >> 32);
    }
    for (int i = 0; i < 4; i++) c[i] = _mm512_set1_epi32((int)B3_IV[i]);
    c[4] = _mm512_loadu_si512((const void *)lo);
    c[5] = _mm512_loadu_si512((const void *)hi);
    c[6] = _mm512_set1_epi32(B3_BLOCK_LEN);
    for (size_t b = 0; b < blocks; b++) {
        const size_t off = b * B3_BLOCK_LEN;
        for (int j = 0; j < 16; j++) {
            /* The hardware prefetcher does not follow sixteen interleaved
             * streams. Two blocks ahead into L1, as in the AVX2 backend, and
             * the same block of the next group of sixteen inputs (`ahead`
             * bytes on: 16 KiB for chunks) into L2, so that from RAM that
             * group is already on its way (measured from RAM: 4.1 -> 5.8
             * GB/s, the L1 prefetch alone 4.1, the L2 one alone 5.6).
             * Prefetches never fault past the end of an input. */
            _mm_prefetch((const char *)(lanes[j] + off + 2 * B3_BLOCK_LEN), _MM_HINT_T0);
            _mm_prefetch((const char *)(lanes[j] + off + ahead), _MM_HINT_T1);
        }
        load_msg16(lanes, off, m);
        uint8_t f = flags;
        if (b == 0) f |= flags_start;
        if (b + 1 == blocks) f |= flags_end;
        c[7] = _mm512_set1_epi32(f);
        compress16(h, c, m);
    }
    /* Rows 8..15 are padding: after the transpose, the low 256 bits of
     * x[j] are the eight CV words of input j. */
    __m512i x[16];
    for (int i = 0; i < 8; i++) {
        x[i] = h[i];
        x[8 + i] = _mm512_setzero_si512();
    }
    transpose16(x);
    for (int j = 0; j < 16; j++)
        _mm256_storeu_si256((__m256i *)(void *)(out + 32 * j), _mm512_castsi512_si256(x[j]));
}

void cb_b3_hash_many_avx512(const uint8_t *input, size_t stride, size_t n, size_t blocks,
                            const uint32_t key[8], uint64_t counter, int increment_counter,
                            uint8_t flags, uint8_t flags_start, uint8_t flags_end, uint8_t *out) {
    while (n >= 16) {
        const uint8_t *lanes[16];
        for (size_t j = 0; j < 16; j++) lanes[j] = input + j * stride;
        hash16_lanes(lanes, 16 * stride, blocks, key, counter, increment_counter, flags,
                     flags_start, flags_end, out);
        input += 16 * stride;
        out += 16 * 32;
        n -= 16;
        if (increment_counter) counter += 16;
    }
    if (n > 8) {
        /* 9..15 inputs: one padded 16-way pass costs about what an 8-way
         * pass plus a partial one would. */
        const uint8_t *lanes[16];
        for (size_t j = 0; j < 16; j++) lanes[j] = input + (j < n ? j : 0) * stride;
        uint8_t tmp[16 * 32];
        hash16_lanes(lanes, 16 * stride, blocks, key, counter, increment_counter, flags,
                     flags_start, flags_end, tmp);
        memcpy(out, tmp, n * 32);
        return;
    }
    cb_b3_hash_many_avx2(input, stride, n, blocks, key, counter, increment_counter, flags,
                         flags_start, flags_end, out);
}
#endif
