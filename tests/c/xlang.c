/*
 * xlang - the C half of the cross-language tests (tests/c/cross.sh; the Rust
 * half is ffi/examples/xlang.rs, which uses the same payload format).
 *
 *   xlang pub NAME TOPIC COUNT               publish COUNT checksummed frames
 *   xlang sub NAME PATTERN COUNT TIMEOUT_MS  receive and verify COUNT frames
 *   xlang wait-subs NAME N TIMEOUT_MS        wait until N live subscribers exist
 *   xlang loop NAME COUNT                    publish and receive COUNT frames in one process
 *                                            (memcheck.sh checks this allocates nothing per frame)
 *
 * Payload of frame I: [tag u32][I u64][filler][FNV-1a-64 of the rest u64],
 * little-endian, 20 + (I * 7) % 300 bytes. `pub` prints "published COUNT SUM"
 * and `sub` prints "received COUNT SUM missed M", SUM being the wrapping sum
 * of the frames' checksums, so the two lines can be compared.
 * `pub` alternates shmbus_publish and shmbus_claim/shmbus_claim_commit.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

#define TAG_C 0xC0u

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static size_t payload_len(uint64_t i) {
    return 20 + (size_t)((i * 7) % 300);
}

/* Fill p (payload_len(i) bytes) and return its checksum. */
static uint64_t make_payload(uint8_t *p, uint32_t tag, uint64_t i) {
    size_t n = payload_len(i);
    put_le(p, tag, 4);
    put_le(p + 4, i, 8);
    for (size_t k = 12; k < n - 8; k++) {
        p[k] = (uint8_t)((uint8_t)(i * 31 + (k - 12)) ^ (uint8_t)tag);
    }
    uint64_t c = fnv1a(p, n - 8);
    put_le(p + n - 8, c, 8);
    return c;
}

static int open_bus(const char *name, shmbus_bus_t **bus) {
    shmbus_config_t cfg = shmbus_config_default();
    if (shmbus_open_or_create(name, &cfg, bus) != SHMBUS_OK) {
        fprintf(stderr, "xlang: %s\n", shmbus_last_error());
        return 0;
    }
    return 1;
}

static int do_pub(const char *name, const char *topic, uint64_t count) {
    shmbus_bus_t *bus = NULL;
    if (!open_bus(name, &bus)) {
        return 1;
    }
    uint8_t buf[400];
    uint64_t sum = 0;
    for (uint64_t i = 0; i < count; i++) {
        size_t n = payload_len(i);
        shmbus_status_t rc;
        if (i % 2 == 0) {
            sum += make_payload(buf, TAG_C, i);
            rc = shmbus_publish(bus, topic, buf, n, NULL);
        } else {
            shmbus_claim_t *c = NULL;
            rc = shmbus_claim(bus, topic, n, &c);
            if (rc == SHMBUS_OK) {
                sum += make_payload(shmbus_claim_payload(c), TAG_C, i);
                rc = shmbus_claim_commit(c, NULL);
            }
        }
        if (rc != SHMBUS_OK) {
            fprintf(stderr, "xlang pub: frame %" PRIu64 ": %s\n", i, shmbus_last_error());
            shmbus_close(bus);
            return 1;
        }
    }
    printf("published %" PRIu64 " %" PRIu64 "\n", count, sum);
    shmbus_close(bus);
    return 0;
}

static int do_sub(const char *name, const char *pattern, uint64_t count, long long timeout_ms) {
    shmbus_bus_t *bus = NULL;
    if (!open_bus(name, &bus)) {
        return 1;
    }
    shmbus_sub_t *sub = NULL;
    if (shmbus_subscribe(bus, pattern, &sub) != SHMBUS_OK) {
        fprintf(stderr, "xlang: %s\n", shmbus_last_error());
        shmbus_close(bus);
        return 1;
    }
    uint64_t got = 0, sum = 0;
    int status = 0;
    while (got < count) {
        shmbus_frame_t f;
        shmbus_status_t rc = shmbus_recv(sub, timeout_ms, &f);
        if (rc != SHMBUS_OK) {
            fprintf(stderr, "xlang sub: after %" PRIu64 " frames: %s\n", got,
                    rc == SHMBUS_TIMEOUT ? "timed out" : shmbus_last_error());
            status = 1;
            break;
        }
        const uint8_t *p = f.payload;
        size_t n = f.payload_len;
        uint64_t index = n >= 20 ? get_le(p + 4, 8) : UINT64_MAX;
        if (n < 20 || index != got || n != payload_len(index) || get_le(p + n - 8, 8) != fnv1a(p, n - 8)) {
            fprintf(stderr, "xlang sub: frame seq %" PRIu64 " (expected index %" PRIu64 ") is corrupt\n", f.seq,
                    got);
            status = 1;
            break;
        }
        sum += get_le(p + n - 8, 8);
        got++;
    }
    printf("received %" PRIu64 " %" PRIu64 " missed %" PRIu64 "\n", got, sum, shmbus_sub_missed(sub));
    shmbus_sub_close(sub);
    shmbus_close(bus);
    return status;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int do_wait_subs(const char *name, uint32_t n, long long timeout_ms) {
    double deadline = now_ms() + (double)timeout_ms;
    struct timespec pause = {0, 10 * 1000 * 1000};
    for (;;) {
        shmbus_bus_t *bus = NULL;
        if (shmbus_open(name, &bus) == SHMBUS_OK) {
            shmbus_stats_t st;
            shmbus_status_t rc = shmbus_stats(bus, &st);
            shmbus_close(bus);
            if (rc == SHMBUS_OK && st.subscribers_alive >= n) {
                return 0;
            }
        }
        if (now_ms() > deadline) {
            fprintf(stderr, "xlang wait-subs: fewer than %u subscribers on %s after %lld ms\n", n, name, timeout_ms);
            return 1;
        }
        nanosleep(&pause, NULL);
    }
}

static int do_loop(const char *name, uint64_t count) {
    shmbus_config_t cfg = shmbus_config_default();
    cfg.memory_limit = 1 << 20;
    shmbus_bus_t *bus = NULL;
    shmbus_sub_t *sub = NULL;
    if (shmbus_create(name, &cfg, &bus) != SHMBUS_OK || shmbus_subscribe(bus, "loop.#", &sub) != SHMBUS_OK) {
        fprintf(stderr, "xlang loop: %s\n", shmbus_last_error());
        shmbus_close(bus);
        return 1;
    }
    uint8_t buf[400];
    int status = 0;
    for (uint64_t i = 0; i < count && status == 0; i++) {
        uint64_t sum = make_payload(buf, TAG_C, i);
        shmbus_frame_t f;
        if (shmbus_publish(bus, "loop.frame", buf, payload_len(i), NULL) != SHMBUS_OK ||
            shmbus_recv(sub, 1000, &f) != SHMBUS_OK || f.payload_len != payload_len(i) ||
            get_le(f.payload + f.payload_len - 8, 8) != sum) {
            fprintf(stderr, "xlang loop: frame %" PRIu64 " failed: %s\n", i, shmbus_last_error());
            status = 1;
        }
    }
    shmbus_sub_close(sub);
    shmbus_close(bus);
    shmbus_remove(name);
    return status;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "pub") == 0) {
        return do_pub(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    }
    if (argc == 6 && strcmp(argv[1], "sub") == 0) {
        return do_sub(argv[2], argv[3], strtoull(argv[4], NULL, 10), strtoll(argv[5], NULL, 10));
    }
    if (argc == 5 && strcmp(argv[1], "wait-subs") == 0) {
        return do_wait_subs(argv[2], (uint32_t)strtoul(argv[3], NULL, 10), strtoll(argv[4], NULL, 10));
    }
    if (argc == 4 && strcmp(argv[1], "loop") == 0) {
        return do_loop(argv[2], strtoull(argv[3], NULL, 10));
    }
    fprintf(stderr,
            "usage: xlang pub NAME TOPIC COUNT | xlang sub NAME PATTERN COUNT TIMEOUT_MS | "
            "xlang wait-subs NAME N TIMEOUT_MS | xlang loop NAME COUNT\n");
    return 2;
}
