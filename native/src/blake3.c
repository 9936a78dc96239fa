/* blake3.c - the BLAKE3 hasher: chunk state, chaining-value stack, tree
 * merging and extendable output, on top of a backend's compression functions.
 *
 * Tree shape (spec 2.1): the input is split into 1 KiB chunks, the leaves of
 * a left-balanced binary tree. The root (the last chunk, or the last parent)
 * must get the ROOT flag, so nothing may be finalized as a non-root node
 * until input beyond it is known to exist.
 *
 * The stack holds the CVs of complete subtrees, left to right. Merging is
 * lazy: a CV is merged with its left neighbour only when more input arrives
 * (merge_stack), after which the stack holds one CV per set bit of
 * chunk_counter (spec 5.1.2). Hence at finalize the stack can be folded from
 * the right into the rightmost node.
 *
 * Speed: when whole chunks are at hand with more than one chunk of input,
 * the largest power-of-two run of them that keeps the tree aligned (a
 * subtree of 2^k chunks starts at a multiple of 2^k chunks) is hashed at
 * once: all its chunks through the backend's hash_many (eight chunks per
 * call on AVX2), then each level of parents the same way, down to the two
 * children of the subtree's top node. Those two CVs are pushed, unmerged: if
 * no more input comes, their parent is the root. */
#include "blake3_impl.h"

/* Largest subtree hashed in one step (chunks); bounds the stack buffers. */
#define B3_MAX_SUBTREE_CHUNKS 256

typedef struct {
    uint32_t cv[8];
    uint8_t block[B3_BLOCK_LEN];
    uint8_t block_len;
    uint8_t flags;
    uint64_t counter;
} b3_output;

size_t cb_blake3_hasher_size(void) { return sizeof(cb_blake3_hasher); }

static void chunk_reset(cb_blake3_hasher *h) {
    memcpy(h->cv, h->key, sizeof h->cv);
    h->buf_len = 0;
    h->blocks_compressed = 0;
}

static void hasher_init(cb_blake3_hasher *h, const uint32_t key[8], uint8_t flags) {
    memcpy(h->key, key, sizeof h->key);
    h->chunk_counter = 0;
    h->flags = flags;
    h->stack_len = 0;
    memset(h->buf, 0, sizeof h->buf);
    chunk_reset(h);
}

void cb_blake3_init(cb_blake3_hasher *h) { hasher_init(h, B3_IV, 0); }

void cb_blake3_init_keyed(cb_blake3_hasher *h, const uint8_t key[32]) {
    uint32_t kw[8];
    b3_load_key_words(key, kw);
    hasher_init(h, kw, B3_KEYED_HASH);
}

void cb_blake3_init_derive_key(cb_blake3_hasher *h, const char *context, size_t context_len) {
    /* Spec 2.5: the context string is hashed in its own mode; its 32-byte
     * output keys the hashing of the key material. */
    cb_blake3_hasher ctx;
    uint8_t context_key[32];
    uint32_t kw[8];
    hasher_init(&ctx, B3_IV, B3_DERIVE_KEY_CONTEXT);
    cb_blake3_update(&ctx, context, context_len);
    cb_blake3_finalize(&ctx, context_key, sizeof context_key);
    b3_load_key_words(context_key, kw);
    hasher_init(h, kw, B3_DERIVE_KEY_MATERIAL);
}

static size_t chunk_len(const cb_blake3_hasher *h) {
    return (size_t)h->blocks_compressed * B3_BLOCK_LEN + h->buf_len;
}

static uint8_t chunk_start_flag(const cb_blake3_hasher *h) {
    return h->blocks_compressed == 0 ? B3_CHUNK_START : 0;
}

/* Feeds at most CHUNK_LEN - chunk_len(h) bytes into the current chunk. The
 * last block seen is always kept buffered: it may need CHUNK_END/ROOT. */
static void chunk_update(cb_blake3_hasher *h, const cb_b3_backend *be, const uint8_t *p,
                         size_t len) {
    while (len > 0) {
        if (h->buf_len == B3_BLOCK_LEN) {
            be->compress_in_place(h->cv, h->buf, B3_BLOCK_LEN, h->chunk_counter,
                                  (uint8_t)(h->flags | chunk_start_flag(h)));
            h->blocks_compressed++;
            h->buf_len = 0;
        }
        while (h->buf_len == 0 && len > B3_BLOCK_LEN) {
            /* Whole blocks straight from the input, no copy. */
            be->compress_in_place(h->cv, p, B3_BLOCK_LEN, h->chunk_counter,
                                  (uint8_t)(h->flags | chunk_start_flag(h)));
            h->blocks_compressed++;
            p += B3_BLOCK_LEN;
            len -= B3_BLOCK_LEN;
        }
        size_t take = B3_BLOCK_LEN - h->buf_len;
        if (take > len) take = len;
        memcpy(h->buf + h->buf_len, p, take);
        h->buf_len = (uint8_t)(h->buf_len + take);
        p += take;
        len -= take;
    }
}

static b3_output chunk_output(const cb_blake3_hasher *h) {
    b3_output o;
    memcpy(o.cv, h->cv, sizeof o.cv);
    memset(o.block, 0, sizeof o.block); /* the spec pads the last block with zeros */
    memcpy(o.block, h->buf, h->buf_len);
    o.block_len = h->buf_len;
    o.counter = h->chunk_counter;
    o.flags = (uint8_t)(h->flags | chunk_start_flag(h) | B3_CHUNK_END);
    return o;
}

static b3_output parent_output(const uint8_t left[32], const uint8_t right[32],
                               const uint32_t key[8], uint8_t flags) {
    b3_output o;
    memcpy(o.cv, key, sizeof o.cv);
    memcpy(o.block, left, 32);
    memcpy(o.block + 32, right, 32);
    o.block_len = B3_BLOCK_LEN;
    o.counter = 0;
    o.flags = (uint8_t)(flags | B3_PARENT);
    return o;
}

static void output_cv_bytes(const b3_output *o, const cb_b3_backend *be, uint8_t out[32]) {
    uint32_t cv[8];
    memcpy(cv, o->cv, sizeof cv);
    be->compress_in_place(cv, o->block, o->block_len, o->counter, o->flags);
    for (int i = 0; i < 8; i++) b3_store32(out + 4 * i, cv[i]);
}

static void parent_cv(const cb_blake3_hasher *h, const cb_b3_backend *be, const uint8_t left[32],
                      const uint8_t right[32], uint8_t out[32]) {
    b3_output o = parent_output(left, right, h->key, h->flags);
    output_cv_bytes(&o, be, out);
}

/* Merges the stack down to one CV per set bit of total_chunks. Only called
 * when input beyond total_chunks chunks exists, so no merged parent can be
 * the root. */
static void merge_stack(cb_blake3_hasher *h, const cb_b3_backend *be, uint64_t total_chunks) {
    size_t want = 0;
    for (uint64_t t = total_chunks; t != 0; t &= t - 1) want++; /* popcount */
    while (h->stack_len > want) {
        uint8_t *top2 = h->stack + 32u * (h->stack_len - 2u);
        parent_cv(h, be, top2, top2 + 32, top2);
        h->stack_len--;
    }
}

/* Pushes the CV of a complete subtree that starts at chunk index first_chunk
 * (so first_chunk chunks lie to its left). */
static void push_cv(cb_blake3_hasher *h, const cb_b3_backend *be, const uint8_t cv[32],
                    uint64_t first_chunk) {
    merge_stack(h, be, first_chunk);
    memcpy(h->stack + 32u * h->stack_len, cv, 32);
    h->stack_len++;
}

/* The two child CVs (64 bytes) of the top node of the subtree made of the
 * n = 2^k >= 2 whole chunks at p, starting at chunk index h->chunk_counter. */
static void subtree_children(const cb_blake3_hasher *h, const cb_b3_backend *be, const uint8_t *p,
                             size_t n, uint8_t out[64]) {
    uint8_t a[B3_MAX_SUBTREE_CHUNKS * 32], b[B3_MAX_SUBTREE_CHUNKS / 2 * 32];
    uint8_t *cur = a, *next = b;
    be->hash_many(p, B3_CHUNK_LEN, n, B3_CHUNK_LEN / B3_BLOCK_LEN, h->key, h->chunk_counter, 1,
                  h->flags, B3_CHUNK_START, B3_CHUNK_END, cur);
    while (n > 2) {
        n /= 2;
        be->hash_many(cur, B3_BLOCK_LEN, n, 1, h->key, 0, 0, (uint8_t)(h->flags | B3_PARENT), 0, 0,
                      next);
        uint8_t *t = cur;
        cur = next;
        next = t;
    }
    memcpy(out, cur, 64);
}

void cb_blake3_update(cb_blake3_hasher *h, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    if (len == 0) return;
    const cb_b3_backend *be = cb_b3_active();

    /* 1. Fill a partly filled chunk; complete it if input remains. */
    size_t cl = chunk_len(h);
    if (cl > 0) {
        size_t take = B3_CHUNK_LEN - cl;
        if (take > len) take = len;
        chunk_update(h, be, p, take);
        p += take;
        len -= take;
        if (len == 0) return;
        b3_output o = chunk_output(h);
        uint8_t cv[32];
        output_cv_bytes(&o, be, cv);
        push_cv(h, be, cv, h->chunk_counter);
        h->chunk_counter++;
        chunk_reset(h);
    }

    /* 2. Whole aligned subtrees while more than one chunk of input remains. */
    while (len > B3_CHUNK_LEN) {
        size_t n = 1; /* chunks: a power of two, at most what len allows */
        while (n < B3_MAX_SUBTREE_CHUNKS && (n * 2) * B3_CHUNK_LEN <= len) n *= 2;
        while ((h->chunk_counter & (uint64_t)(n - 1)) != 0) n /= 2;
        if (n == 1) {
            /* Input remains after this chunk, so it is not the root. */
            uint8_t cv[32];
            be->hash_many(p, B3_CHUNK_LEN, 1, B3_CHUNK_LEN / B3_BLOCK_LEN, h->key,
                          h->chunk_counter, 1, h->flags, B3_CHUNK_START, B3_CHUNK_END, cv);
            push_cv(h, be, cv, h->chunk_counter);
        } else {
            /* The subtree may end the input: keep its top node open. */
            uint8_t children[64];
            subtree_children(h, be, p, n, children);
            push_cv(h, be, children, h->chunk_counter);
            push_cv(h, be, children + 32, h->chunk_counter + n / 2);
        }
        h->chunk_counter += n;
        p += n * B3_CHUNK_LEN;
        len -= n * B3_CHUNK_LEN;
    }

    /* 3. The rest (1..1024 bytes) starts the next chunk. Input exists past
     * every stacked subtree now, so they can be merged. */
    if (len > 0) {
        chunk_reset(h);
        chunk_update(h, be, p, len);
        merge_stack(h, be, h->chunk_counter);
    }
}

void cb_blake3_finalize(const cb_blake3_hasher *h, uint8_t *out, size_t out_len) {
    const cb_b3_backend *be = cb_b3_active();
    b3_output o;
    size_t i = h->stack_len;
    if (chunk_len(h) > 0 || i == 0) {
        /* The current chunk is the rightmost leaf (or the only one); the
         * stack is fully merged (update step 3). */
        o = chunk_output(h);
    } else {
        /* The input ended with a wide subtree: its two children are on top
         * of the stack and their parent is the rightmost node. */
        i -= 2;
        o = parent_output(h->stack + 32 * i, h->stack + 32 * (i + 1), h->key, h->flags);
    }
    /* Fold the rest from the right: each stacked CV is a left sibling. */
    for (; i > 0; i--) {
        uint8_t right[32];
        output_cv_bytes(&o, be, right);
        o = parent_output(h->stack + 32 * (i - 1), right, h->key, h->flags);
    }
    /* Root output blocks (spec 2.6): counter t gives bytes 64t..64t+63. */
    uint64_t t = 0;
    uint8_t block[64];
    while (out_len > 0) {
        be->compress_xof(o.cv, o.block, o.block_len, t, (uint8_t)(o.flags | B3_ROOT), block);
        size_t take = out_len < 64 ? out_len : 64;
        memcpy(out, block, take);
        out += take;
        out_len -= take;
        t++;
    }
}

void cb_blake3(const void *data, size_t len, uint8_t out[32]) {
    cb_blake3_hasher h;
    cb_blake3_init(&h);
    cb_blake3_update(&h, data, len);
    cb_blake3_finalize(&h, out, 32);
}
