/* FastCDC vectors (computed by the pure-Python reference of docs/chunker.md in
 * tests/helpers_native.py) and invariants: streaming == whole buffer, any thread count. */
#include "check.h"
#include "cheng_native.h"

#include <stdlib.h>
#include <string.h>

static size_t whole(const cb_cdc *c, const uint8_t *buf, size_t n, unsigned threads, uint64_t *ends) {
    size_t cap = cb_cdc_max_chunks(c, n);
    return cb_cdc_chunk(c, buf, n, 1, threads, ends, cap, NULL);
}

static uint64_t weighted(const uint64_t *ends, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) s += ends[i] * (i + 1);
    return s;
}

/* Feed the input in windows of `w` bytes the way a file reader would. */
static size_t streamed(const cb_cdc *c, const uint8_t *data, size_t n, size_t w, unsigned threads,
                       uint64_t *ends) {
    uint8_t *buf = malloc(w);
    uint64_t *tmp = malloc(sizeof(uint64_t) * (cb_cdc_max_chunks(c, w) + 1));
    size_t base = 0, filled = 0, read = 0, total = 0;
    for (;;) {
        size_t take = n - read < w - filled ? n - read : w - filled;
        memcpy(buf + filled, data + read, take);
        filled += take;
        read += take;
        int eof = read == n;
        size_t consumed = 0;
        size_t k = cb_cdc_chunk(c, buf, filled, eof, threads, tmp, cb_cdc_max_chunks(c, w) + 1, &consumed);
        for (size_t i = 0; i < k; i++) ends[total++] = base + tmp[i];
        if (eof) break;
        memmove(buf, buf + consumed, filled - consumed);
        base += consumed;
        filled -= consumed;
    }
    free(buf);
    free(tmp);
    return total;
}

int main(void) {
    uint64_t gear[256];
    cb_cdc_gear(gear);
    CHECK(gear[0] == 0xc09117dd2dcdc988ull);
    CHECK(gear[1] == 0x7716aaa207884b0bull);
    CHECK(gear[2] == 0x72833dac2222ca2aull);
    CHECK(gear[255] == 0x1c556a6d5f1aaf9bull);
    CHECK(cb_cdc_mask(20) == 0x54a54a54a54a0000ull);
    CHECK(cb_cdc_mask(16) == 0x4924924924920000ull);
    CHECK(cb_cdc_mask(0) == 0 && cb_cdc_mask(49) == 0);

    cb_cdc *c = malloc(cb_cdc_size());
    CHECK(cb_cdc_init(c, 65536, 262144, 1048576, 2) == CB_CDC_OK);
    CHECK(cb_cdc_mask_s(c) == cb_cdc_mask(20) && cb_cdc_mask_l(c) == cb_cdc_mask(16));
    CHECK(cb_cdc_init(c, 63, 256, 1024, 0) == CB_CDC_EMIN);
    CHECK(cb_cdc_init(c, 512, 256, 1024, 0) == CB_CDC_EMIN);
    CHECK(cb_cdc_init(c, 64, 300, 1024, 0) == CB_CDC_EAVG);
    CHECK(cb_cdc_init(c, 64, 0, 1024, 0) == CB_CDC_EAVG);
    CHECK(cb_cdc_init(c, 64, 256, 255, 0) == CB_CDC_EMAX);
    CHECK(cb_cdc_init(c, 64, 256, (1ull << 30) + 1, 0) == CB_CDC_EMAX);
    CHECK(cb_cdc_init(c, 64, 256, 1024, 4) == CB_CDC_ENORM);
    CHECK(cb_cdc_init_custom(c, 64, 256, 1024, 0, 1, gear) == CB_CDC_EMASK);
    CHECK(strcmp(cb_cdc_strerror(CB_CDC_EAVG), "avg_size must be a power of two from 256 to 2**28") == 0);

    size_t n = 1u << 20;
    uint8_t *data = malloc(n);
    cb_fill(data, n, 1);
    uint64_t *ends = malloc(sizeof(uint64_t) * (n / 62 + 8));
    uint64_t *ends2 = malloc(sizeof(uint64_t) * (n / 62 + 8));

    /* Vector 1: 1 MiB, min/avg/max 4096/16384/65536, normalization 2. */
    CHECK(cb_cdc_init(c, 4096, 16384, 65536, 2) == CB_CDC_OK);
    size_t k = whole(c, data, n, 1, ends);
    static const uint64_t v1[12] = {17541, 44527, 83086, 100179, 106960, 121294,
                                    138409, 159165, 183602, 201993, 220966, 238560};
    CHECK(k == 57);
    CHECK(memcmp(ends, v1, sizeof v1) == 0);
    CHECK(weighted(ends, k) == 1153628090ull);
    CHECK(ends[k - 1] == n);
    CHECK(cb_cdc_cut(c, data, n) == 17541);
    CHECK(cb_cdc_cut(c, data, 100) == 100);
    CHECK(cb_cdc_cut(c, data, 0) == 0);
    for (unsigned t = 2; t <= 9; t++) {
        size_t k2 = whole(c, data, n, t, ends2);
        CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);
    }
    for (size_t w = 2 * 65536; w <= 6 * 65536; w += 65536 + 7) {
        size_t k2 = streamed(c, data, n, w, 1, ends2);
        CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);
    }
    /* Windows big enough for the parallel search, which must also leave the same tail. */
    for (unsigned t = 2; t <= 3; t++) {
        size_t k2 = streamed(c, data, n, 9 * 65536 * t + 13, t, ends2);
        CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);
    }
    /* Too little room is refused, never overrun. */
    CHECK(cb_cdc_chunk(c, data, n, 1, 1, ends2, 3, NULL) == (size_t)-1);

    /* Vector 2: the first 200,000 bytes, 64/256/1024, normalization 1. */
    CHECK(cb_cdc_init(c, 64, 256, 1024, 1) == CB_CDC_OK);
    k = whole(c, data, 200000, 1, ends);
    static const uint64_t v2[12] = {650, 956, 1553, 1907, 2167, 2524, 2645, 2987, 3276, 3391, 3806, 4402};
    CHECK(k == 653);
    CHECK(memcmp(ends, v2, sizeof v2) == 0);
    CHECK(weighted(ends, k) == 28570573498ull);
    for (unsigned t = 2; t <= 16; t++) {
        size_t k2 = whole(c, data, 200000, t, ends2);
        CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);
    }
    for (size_t w = 2048; w <= 9000; w += 977) {
        for (unsigned t = 1; t <= 2; t++) {
            size_t k2 = streamed(c, data, 200000, w, t, ends2);
            CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);
        }
    }
    for (size_t w = 20000; w <= 60000; w += 9973) {
        for (unsigned t = 2; t <= 5; t++) {
            size_t k2 = streamed(c, data, 200000, w, t, ends2);
            CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);
        }
    }

    /* Zeros (a constant gear hash): still bounded by max_size, threads agree. */
    memset(data, 0, n);
    k = whole(c, data, n, 1, ends);
    for (size_t i = 0; i < k; i++) CHECK(ends[i] - (i ? ends[i - 1] : 0) <= 1024);
    size_t k2 = whole(c, data, n, 4, ends2);
    CHECK(k2 == k && memcmp(ends, ends2, k * sizeof *ends) == 0);

    free(ends);
    free(ends2);
    free(data);
    free(c);
    if (cb_failures) fprintf(stderr, "test_cdc: %d failure(s)\n", cb_failures);
    return cb_failures != 0;
}
