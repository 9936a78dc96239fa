/* sha256_shani.c - SHA-256 blocks with the x86 SHA extensions.
 *
 * sha256rnds2 runs two rounds on the state split as ABEF (dwords 3..0 =
 * A,B,E,F) and CDGH; its result is the new ABEF, and the new CDGH is the old
 * ABEF, so the two registers swap roles every two rounds. sha256msg1/msg2
 * compute the message schedule four words at a time (FIPS 180-4, 6.2.2
 * step 1):  W[t..t+3] = msg2(msg1(W[t-16..], W[t-12..]) + W[t-7..t-4],
 * W[t-4..t-1]). Built with -msha -msse4.1 (needs SSSE3/SSE4.1 too). */
#include "sha256_impl.h"

#ifdef CB_HAVE_X86
#include <immintrin.h>

/* Four rounds 4g..4g+3 with message vector m (W[4g..4g+3]). */
#define ROUNDS4(m, g)                                                                      \
    do {                                                                                   \
        __m128i wk = _mm_add_epi32((m), _mm_loadu_si128((const __m128i *)&cb_sha256_K[4 * (g)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                                      \
        wk = _mm_shuffle_epi32(wk, 0x0E);                                                  \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);                                      \
    } while (0)

/* m0 <- next four schedule words, given m0 = W[t-16..], m1 = W[t-12..],
 * m2 = W[t-8..], m3 = W[t-4..]. */
#define SCHEDULE(m0, m1, m2, m3)                                                           \
    do {                                                                                   \
        __m128i s = _mm_sha256msg1_epu32((m0), (m1));                                      \
        s = _mm_add_epi32(s, _mm_alignr_epi8((m3), (m2), 4));                              \
        (m0) = _mm_sha256msg2_epu32(s, (m3));                                              \
    } while (0)

void cb_sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks) {
    /* Byte swap within each dword: the message words are big-endian. */
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i badc = _mm_shuffle_epi32(dcba, 0xB1); /* dwords: B A D C */
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B); /* dwords: H G F E */
    __m128i abef = _mm_alignr_epi8(badc, efgh, 8); /* dwords: F E B A */
    __m128i cdgh = _mm_blend_epi16(efgh, badc, 0xF0); /* dwords: H G D C */

    while (nblocks--) {
        __m128i save_abef = abef, save_cdgh = cdgh;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), bswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), bswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), bswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), bswap);
        ROUNDS4(m0, 0);
        ROUNDS4(m1, 1);
        ROUNDS4(m2, 2);
        ROUNDS4(m3, 3);
        SCHEDULE(m0, m1, m2, m3); ROUNDS4(m0, 4);
        SCHEDULE(m1, m2, m3, m0); ROUNDS4(m1, 5);
        SCHEDULE(m2, m3, m0, m1); ROUNDS4(m2, 6);
        SCHEDULE(m3, m0, m1, m2); ROUNDS4(m3, 7);
        SCHEDULE(m0, m1, m2, m3); ROUNDS4(m0, 8);
        SCHEDULE(m1, m2, m3, m0); ROUNDS4(m1, 9);
        SCHEDULE(m2, m3, m0, m1); ROUNDS4(m2, 10);
        SCHEDULE(m3, m0, m1, m2); ROUNDS4(m3, 11);
        SCHEDULE(m0, m1, m2, m3); ROUNDS4(m0, 12);
        SCHEDULE(m1, m2, m3, m0); ROUNDS4(m1, 13);
        SCHEDULE(m2, m3, m0, m1); ROUNDS4(m2, 14);
        SCHEDULE(m3, m0, m1, m2); ROUNDS4(m3, 15);
        abef = _mm_add_epi32(abef, save_abef);
        cdgh = _mm_add_epi32(cdgh, save_cdgh);
        data += 64;
    }

    __m128i abfe = _mm_shuffle_epi32(abef, 0x1B);  /* dwords: A B E F */
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);  /* dwords: G H C D */
    dcba = _mm_blend_epi16(abfe, dchg, 0xF0);      /* dwords: A B C D */
    hgfe = _mm_alignr_epi8(dchg, abfe, 8);         /* dwords: E F G H */
    _mm_storeu_si128((__m128i *)&state[0], dcba);
    _mm_storeu_si128((__m128i *)&state[4], hgfe);
}
#endif
