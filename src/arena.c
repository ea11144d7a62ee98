/*
 * arena.c: a domain's memory. Bump allocation from blocks; everything is
 * freed at once when the domain goes (nginx pools, h2o mem pools).
 * Requests larger than a quarter block get a block of their own, linked
 * after the current one so the current block keeps serving small requests.
 */
#include <stdalign.h>
#include <string.h>

#include "internal.h"

#define BW__ARENA_BLOCK 4096
#define BW__ARENA_ALIGN alignof(max_align_t)

struct bw__arena_block {
    bw__arena_block *next;
    size_t size; /* usable bytes in data */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

static size_t round_up(size_t n)
{
    return (n + BW__ARENA_ALIGN - 1) & ~(size_t)(BW__ARENA_ALIGN - 1);
}

static bw__arena_block *new_block(bw__arena *a, size_t size)
{
    bw__arena_block *b = bw_malloc(sizeof *b + size);
    if (b == NULL)
        return NULL;
    b->size = size;
    b->used = 0;
    a->total += sizeof *b + size;
    return b;
}

void *bw__arena_alloc(bw__arena *a, size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size = round_up(size == 0 ? 1 : size);
    bw__arena_block *b = a->head;
    if (b != NULL && b->size - b->used >= size) {
        void *p = b->data + b->used;
        b->used += size;
        return p;
    }
    size_t usable = BW__ARENA_BLOCK - sizeof(bw__arena_block);
    if (size > usable / 4) {
        /* A large request: its own block, behind the current one. */
        bw__arena_block *big = new_block(a, size);
        if (big == NULL)
            return NULL;
        big->used = size;
        if (b != NULL) {
            big->next = b->next;
            b->next = big;
        } else {
            big->next = NULL;
            a->head = big;
        }
        return big->data;
    }
    bw__arena_block *fresh = new_block(a, usable);
    if (fresh == NULL)
        return NULL;
    fresh->next = b;
    fresh->used = size;
    a->head = fresh;
    return fresh->data;
}

void bw__arena_free_all(bw__arena *a)
{
    bw__arena_block *b = a->head;
    while (b != NULL) {
        bw__arena_block *next = b->next;
        bw_free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}
