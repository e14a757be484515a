/*
 * test_ffi.c - exercises every function of include/shmbus.h, including each
 * error path, from C. Built and run by `make test-c` (also under valgrind).
 *
 * Every bus is named "ctest-PID-N-TAG" and removed at exit, also when a
 * check fails or the program is killed by a signal.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

/* ---- tiny test framework ------------------------------------------------ */

static int checks, failures;

#define CHECK(cond)                                                                                    \
    do {                                                                                               \
        checks++;                                                                                      \
        if (!(cond)) {                                                                                 \
            failures++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__, __LINE__, #cond,   \
                    shmbus_last_error());                                                              \
        }                                                                                              \
    } while (0)

#define CHECK_RC(expr, want)                                                                           \
    do {                                                                                               \
        int rc_ = (int)(expr);                                                                         \
        checks++;                                                                                      \
        if (rc_ != (int)(want)) {                                                                      \
            failures++;                                                                                \
            fprintf(stderr, "%s:%d: %s returned %d (%s), want %s; last error: %s\n", __FILE__, __LINE__, \
                    #expr, rc_, shmbus_status_str(rc_), #want, shmbus_last_error());                   \
        }                                                                                              \
    } while (0)

/* The call fails with `want` and shmbus_last_error() names the function and contains `needle`. */
#define CHECK_ERR(expr, want, fn, needle)                                                              \
    do {                                                                                               \
        CHECK_RC(expr, want);                                                                          \
        CHECK(strncmp(shmbus_last_error(), fn ": ", strlen(fn ": ")) == 0);                            \
        CHECK(strstr(shmbus_last_error(), needle) != NULL);                                            \
    } while (0)

/* ---- bus names, removed at exit ----------------------------------------- */

#define MAX_NAMES 128
static char names[MAX_NAMES][96];
static int n_names;

static const char *new_name(const char *tag) {
    if (n_names == MAX_NAMES) {
        fprintf(stderr, "too many bus names\n");
        exit(2);
    }
    snprintf(names[n_names], sizeof names[n_names], "ctest-%ld-%d-%s", (long)getpid(), n_names, tag);
    return names[n_names++];
}

static void remove_all(void) {
    for (int i = 0; i < n_names; i++) {
        (void)shmbus_remove(names[i]);
    }
}

static void on_signal(int sig) {
    remove_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- helpers ------------------------------------------------------------- */

static shmbus_config_t small_cfg(void) {
    shmbus_config_t cfg = shmbus_config_default();
    cfg.memory_limit = 1 << 20;
    cfg.max_frame_size = 4096;
    return cfg;
}

static shmbus_bus_t *make_bus(const char *name, const shmbus_config_t *cfg) {
    shmbus_bus_t *bus = NULL;
    CHECK_RC(shmbus_create(name, cfg, &bus), SHMBUS_OK);
    return bus;
}

static int payload_is(const shmbus_frame_t *f, const char *s) {
    size_t n = strlen(s);
    return f->payload_len == n && memcmp(f->payload, s, n) == 0;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

/* Force a known last error, to show that a later call left it alone. */
static void set_marker_error(void) {
    CHECK_RC(shmbus_remove(NULL), SHMBUS_INVALID_ARGUMENT);
}
#define MARKER "shmbus_remove: argument `name` is NULL"

/* ---- tests --------------------------------------------------------------- */

static void test_static_functions(void) {
    CHECK(strcmp(shmbus_last_error(), "") == 0); /* nothing failed yet on this thread */
    CHECK(shmbus_version() != NULL && strlen(shmbus_version()) > 0);

    for (int s = SHMBUS_OK; s <= SHMBUS_INTERNAL; s++) {
        const char *t = shmbus_status_str(s);
        CHECK(t != NULL && strlen(t) > 0 && strcmp(t, "unknown status") != 0);
    }
    CHECK(strcmp(shmbus_status_str(SHMBUS_OK), "ok") == 0);
    CHECK(strcmp(shmbus_status_str(SHMBUS_FULL), "bus is full") == 0);
    CHECK(strcmp(shmbus_status_str(-1), "unknown status") == 0);
    CHECK(strcmp(shmbus_status_str(SHMBUS_INTERNAL + 1), "unknown status") == 0);

    shmbus_config_t c = shmbus_config_default();
    CHECK(c.memory_limit == 64u << 20);
    CHECK(c.keep_ratio == 0.9);
    CHECK(c.max_frame_size == 64u << 10);
    CHECK(c.listener_limit == 64 && c.producer_limit == 128);
    CHECK(c.overflow == SHMBUS_OVERFLOW_EVICT && c.mode == 0600);
    CHECK(c.claim_timeout_ms == 100 && c.block_timeout_ms == 1000);
    CHECK(!c.checksum && !c.single_producer);

    shmbus_meta_t m = shmbus_meta_default();
    CHECK(m.kind == SHMBUS_KIND_EVENT && m.event_type == SHMBUS_EVENT_OTHER);
    CHECK(all_zero(m.correlation_id, 16) && all_zero(m.parent_id, 16) && all_zero(m.root_id, 16));

    shmbus_subscribe_options_t o = shmbus_subscribe_options_default();
    CHECK(o.filter == SHMBUS_FILTER_TOPIC && o.start == SHMBUS_START_NEWEST && o.start_seq == 0);
    CHECK(o.wait == SHMBUS_WAIT_SPIN_THEN_PARK && o.spin_us == 50);

    const char *kinds[] = {"padding", "event", "log", "alert", "control"};
    for (int k = 0; k < 5; k++) {
        CHECK(shmbus_kind_str(k) != NULL && strcmp(shmbus_kind_str(k), kinds[k]) == 0);
    }
    CHECK(shmbus_kind_str(5) == NULL && shmbus_kind_str(-1) == NULL);
    const char *types[] = {"other", "new", "update", "delete"};
    for (int e = 0; e < 4; e++) {
        CHECK(shmbus_event_type_str(e) != NULL && strcmp(shmbus_event_type_str(e), types[e]) == 0);
    }
    CHECK(shmbus_event_type_str(4) == NULL && shmbus_event_type_str(-1) == NULL);
}

struct bad_config {
    const char *what;
    void (*apply)(shmbus_config_t *);
    int want;
    const char *needle;
};
static void keep_zero(shmbus_config_t *c) { c->keep_ratio = 0.0; }
static void keep_one(shmbus_config_t *c) { c->keep_ratio = 1.0; }
static void keep_nan(shmbus_config_t *c) { c->keep_ratio = NAN; }
static void frame_zero(shmbus_config_t *c) { c->max_frame_size = 0; }
static void frame_huge(shmbus_config_t *c) { c->max_frame_size = (64u << 20) + 1; }
static void listeners_zero(shmbus_config_t *c) { c->listener_limit = 0; }
static void listeners_huge(shmbus_config_t *c) { c->listener_limit = 4097; }
static void producers_zero(shmbus_config_t *c) { c->producer_limit = 0; }
static void mode_ro(shmbus_config_t *c) { c->mode = 0400; }
static void mode_sticky(shmbus_config_t *c) { c->mode = 01777; }
static void memory_tiny(shmbus_config_t *c) { c->memory_limit = 1000; }
static void memory_vs_frame(shmbus_config_t *c) {
    c->memory_limit = 256 << 10;
    c->max_frame_size = 1 << 20;
}
static void claim_zero(shmbus_config_t *c) { c->claim_timeout_ms = 0; }
static void overflow_bad(shmbus_config_t *c) { c->overflow = 7; }
static void block_too_long(shmbus_config_t *c) {
    c->overflow = SHMBUS_OVERFLOW_BLOCK;
    c->block_timeout_ms = 3600u * 1000u + 1u;
}

static const struct bad_config bad_configs[] = {
    {"keep_ratio 0", keep_zero, SHMBUS_INVALID_CONFIG, "keep_ratio"},
    {"keep_ratio 1", keep_one, SHMBUS_INVALID_CONFIG, "keep_ratio"},
    {"keep_ratio NaN", keep_nan, SHMBUS_INVALID_CONFIG, "keep_ratio"},
    {"max_frame_size 0", frame_zero, SHMBUS_INVALID_CONFIG, "max_frame_size"},
    {"max_frame_size huge", frame_huge, SHMBUS_INVALID_CONFIG, "max_frame_size"},
    {"listener_limit 0", listeners_zero, SHMBUS_INVALID_CONFIG, "listener_limit"},
    {"listener_limit huge", listeners_huge, SHMBUS_INVALID_CONFIG, "listener_limit"},
    {"producer_limit 0", producers_zero, SHMBUS_INVALID_CONFIG, "producer_limit"},
    {"mode 0400", mode_ro, SHMBUS_INVALID_CONFIG, "mode"},
    {"mode 01777", mode_sticky, SHMBUS_INVALID_CONFIG, "mode"},
    {"memory_limit tiny", memory_tiny, SHMBUS_INVALID_CONFIG, "memory_limit"},
    {"memory_limit < 2 frames", memory_vs_frame, SHMBUS_INVALID_CONFIG, "max_frame_size"},
    {"claim_timeout 0", claim_zero, SHMBUS_INVALID_CONFIG, "claim_timeout"},
    {"overflow 7", overflow_bad, SHMBUS_INVALID_CONFIG, "overflow"},
    {"block timeout > 1h", block_too_long, SHMBUS_INVALID_CONFIG, "overflow"},
};

static void test_create_open_remove(void) {
    const char *name = new_name("life");
    shmbus_config_t cfg = small_cfg();
    shmbus_bus_t *bus = NULL, *other = NULL;

    /* NULL arguments, each one, and nothing is created. */
    CHECK_ERR(shmbus_create(NULL, &cfg, &bus), SHMBUS_INVALID_ARGUMENT, "shmbus_create", "`name` is NULL");
    CHECK_ERR(shmbus_create(name, NULL, &bus), SHMBUS_INVALID_ARGUMENT, "shmbus_create", "`config` is NULL");
    CHECK_ERR(shmbus_create(name, &cfg, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_create", "`out_bus` is NULL");
    CHECK(bus == NULL);
    CHECK_ERR(shmbus_open(name, &bus), SHMBUS_NOT_FOUND, "shmbus_open", name);
    CHECK(bus == NULL);

    /* Names: not UTF-8, and rejected by the core. */
    CHECK_ERR(shmbus_create("bad\xff", &cfg, &bus), SHMBUS_INVALID_ARGUMENT, "shmbus_create", "not valid UTF-8");
    CHECK_ERR(shmbus_create("a/b", &cfg, &bus), SHMBUS_INVALID_NAME, "shmbus_create", "'/'");
    CHECK_ERR(shmbus_create("", &cfg, &bus), SHMBUS_INVALID_NAME, "shmbus_create", "empty");
    CHECK_ERR(shmbus_create("x..y", &cfg, &bus), SHMBUS_INVALID_NAME, "shmbus_create", "'..'");
    CHECK_ERR(shmbus_create("has space", &cfg, &bus), SHMBUS_INVALID_NAME, "shmbus_create", "whitespace");
    char long_name[SHMBUS_MAX_NAME_LEN + 2];
    memset(long_name, 'x', SHMBUS_MAX_NAME_LEN + 1);
    long_name[SHMBUS_MAX_NAME_LEN + 1] = '\0';
    CHECK_ERR(shmbus_create(long_name, &cfg, &bus), SHMBUS_INVALID_NAME, "shmbus_create", "200 bytes");
    CHECK(bus == NULL);

    /* Every bad config field is reported by name, by create and open_or_create. */
    for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
        shmbus_config_t bad = small_cfg();
        bad_configs[i].apply(&bad);
        int rc = shmbus_create(name, &bad, &bus);
        if (rc != bad_configs[i].want || strstr(shmbus_last_error(), bad_configs[i].needle) == NULL) {
            fprintf(stderr, "bad config %s: got %d (%s)\n", bad_configs[i].what, rc, shmbus_last_error());
        }
        CHECK_RC(rc, bad_configs[i].want);
        CHECK(strstr(shmbus_last_error(), bad_configs[i].needle) != NULL);
        CHECK_RC(shmbus_open_or_create(name, &bad, &bus), bad_configs[i].want);
        CHECK(bus == NULL);
    }
    CHECK_RC(shmbus_open(name, &bus), SHMBUS_NOT_FOUND);

    /* Create, then create again: EXISTS, and the out-pointer is left alone. */
    bus = make_bus(name, &cfg);
    CHECK(bus != NULL);
    other = (shmbus_bus_t *)&cfg; /* a sentinel that must survive failures */
    CHECK_ERR(shmbus_create(name, &cfg, &other), SHMBUS_EXISTS, "shmbus_create", "already exists");
    CHECK(other == (shmbus_bus_t *)&cfg);

    /* open: NULL arguments, bad names, then success. */
    CHECK_ERR(shmbus_open(NULL, &other), SHMBUS_INVALID_ARGUMENT, "shmbus_open", "`name` is NULL");
    CHECK_ERR(shmbus_open(name, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_open", "`out_bus` is NULL");
    CHECK_ERR(shmbus_open("\xc3\x28", &other), SHMBUS_INVALID_ARGUMENT, "shmbus_open", "UTF-8");
    CHECK_ERR(shmbus_open("../etc", &other), SHMBUS_INVALID_NAME, "shmbus_open", "invalid bus name");
    CHECK(other == (shmbus_bus_t *)&cfg);
    CHECK_RC(shmbus_open(name, &other), SHMBUS_OK);
    CHECK(other != NULL && other != bus);
    shmbus_close(other);

    /* open_or_create on an existing bus keeps the bus's own config. */
    shmbus_config_t big = shmbus_config_default();
    CHECK_ERR(shmbus_open_or_create(NULL, &big, &other), SHMBUS_INVALID_ARGUMENT, "shmbus_open_or_create",
              "`name` is NULL");
    CHECK_ERR(shmbus_open_or_create(name, NULL, &other), SHMBUS_INVALID_ARGUMENT, "shmbus_open_or_create",
              "`config` is NULL");
    CHECK_ERR(shmbus_open_or_create(name, &big, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_open_or_create",
              "`out_bus` is NULL");
    CHECK_ERR(shmbus_open_or_create("bad\xfe", &big, &other), SHMBUS_INVALID_ARGUMENT, "shmbus_open_or_create",
              "UTF-8");
    CHECK_ERR(shmbus_open_or_create("a/b", &big, &other), SHMBUS_INVALID_NAME, "shmbus_open_or_create", "'/'");
    other = NULL;
    CHECK_RC(shmbus_open_or_create(name, &big, &other), SHMBUS_OK);
    shmbus_stats_t st;
    CHECK_RC(shmbus_stats(other, &st), SHMBUS_OK);
    CHECK(st.memory_limit <= 1 << 20 && st.memory_limit > 1 << 19); /* not the 64 MiB asked for */
    shmbus_close(other);

    /* open_or_create creates a missing bus with the given config. */
    const char *fresh = new_name("fresh");
    other = NULL;
    CHECK_RC(shmbus_open_or_create(fresh, &cfg, &other), SHMBUS_OK);
    CHECK_RC(shmbus_stats(other, &st), SHMBUS_OK);
    CHECK(st.memory_limit <= 1 << 20 && st.memory_limit > 1 << 19 && st.keep_ratio == 0.9);
    shmbus_close(other);
    CHECK_RC(shmbus_remove(fresh), SHMBUS_OK);

    /* remove: errors, success, then NOT_FOUND; open handles keep working. */
    CHECK_ERR(shmbus_remove(NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_remove", "`name` is NULL");
    CHECK_ERR(shmbus_remove("bad\xff"), SHMBUS_INVALID_ARGUMENT, "shmbus_remove", "UTF-8");
    CHECK_ERR(shmbus_remove("a/b"), SHMBUS_INVALID_NAME, "shmbus_remove", "'/'");
    shmbus_sub_t *sub = NULL;
    CHECK_RC(shmbus_subscribe(bus, "#", &sub), SHMBUS_OK);
    CHECK_RC(shmbus_remove(name), SHMBUS_OK);
    CHECK_ERR(shmbus_remove(name), SHMBUS_NOT_FOUND, "shmbus_remove", "not found");
    CHECK_RC(shmbus_open(name, &other), SHMBUS_NOT_FOUND);
    CHECK_RC(shmbus_publish(bus, "still.alive", "x", 1, NULL), SHMBUS_OK);
    shmbus_frame_t f;
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(payload_is(&f, "x"));
    shmbus_sub_close(sub);
    shmbus_close(bus);

    /* Closing NULL handles is a no-op. */
    shmbus_close(NULL);
    shmbus_sub_close(NULL);
}

static void test_incompatible_and_permissions(void) {
    const char *name = new_name("garbage");
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/shmbus.%s", name);
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (fp == NULL) {
        return;
    }
    for (int i = 0; i < 8192; i++) {
        fputc('x', fp);
    }
    fclose(fp);
    chmod(path, 0600);
    shmbus_bus_t *bus = NULL;
    shmbus_config_t cfg = small_cfg();
    CHECK_ERR(shmbus_open(name, &bus), SHMBUS_INCOMPATIBLE, "shmbus_open", "incompatible");
    CHECK_ERR(shmbus_open_or_create(name, &cfg, &bus), SHMBUS_INCOMPATIBLE, "shmbus_open_or_create",
              "incompatible");
    CHECK(bus == NULL);

    if (geteuid() != 0) {
        chmod(path, 0);
        CHECK_ERR(shmbus_open(name, &bus), SHMBUS_PERMISSION_DENIED, "shmbus_open", "permission denied");
    } else {
        printf("  (running as root: SHMBUS_PERMISSION_DENIED cannot be provoked, skipped)\n");
    }
    CHECK_RC(shmbus_remove(name), SHMBUS_OK);
}

static void test_publish_and_recv(void) {
    const char *name = new_name("pub");
    shmbus_config_t cfg = small_cfg();
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_sub_t *sub = NULL, *all = NULL;
    CHECK_RC(shmbus_subscribe(bus, "events.process.#", &sub), SHMBUS_OK);
    CHECK_RC(shmbus_subscribe(bus, "#", &all), SHMBUS_OK);

    uint64_t seq = 999;
    CHECK_RC(shmbus_publish(bus, "events.process.lifecycle", "started", 7, &seq), SHMBUS_OK);
    CHECK(seq == 0);
    shmbus_frame_t f;
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == 0);
    CHECK(f.topic_len == strlen("events.process.lifecycle"));
    CHECK(strcmp(f.topic, "events.process.lifecycle") == 0); /* NUL-terminated */
    CHECK(payload_is(&f, "started"));
    CHECK(f.timestamp_ns > 1600000000000000000ull);
    CHECK(f.producer == (uint32_t)getpid());
    CHECK(f.kind == SHMBUS_KIND_EVENT && f.event_type == SHMBUS_EVENT_OTHER);
    CHECK(all_zero(f.correlation_id, 16) && all_zero(f.parent_id, 16) && all_zero(f.root_id, 16));

    /* publish_with carries kind, event type and the three ids (little-endian). */
    shmbus_meta_t m = shmbus_meta_default();
    m.kind = SHMBUS_KIND_LOG;
    m.event_type = SHMBUS_EVENT_UPDATE;
    m.correlation_id[0] = 11;
    m.parent_id[0] = 22;
    m.root_id[0] = 33;
    m.root_id[15] = 0x80;
    CHECK_RC(shmbus_publish_with(bus, &m, "events.process.update", "u", 1, &seq), SHMBUS_OK);
    CHECK(seq == 1);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == 1 && f.kind == SHMBUS_KIND_LOG && f.event_type == SHMBUS_EVENT_UPDATE);
    CHECK(memcmp(f.correlation_id, m.correlation_id, 16) == 0);
    CHECK(memcmp(f.parent_id, m.parent_id, 16) == 0);
    CHECK(memcmp(f.root_id, m.root_id, 16) == 0);
    for (int k = SHMBUS_KIND_EVENT; k <= SHMBUS_KIND_CONTROL; k++) {
        for (int e = SHMBUS_EVENT_OTHER; e <= SHMBUS_EVENT_DELETE; e++) {
            m.kind = k;
            m.event_type = e;
            CHECK_RC(shmbus_publish_with(bus, &m, "events.process.kinds", "k", 1, NULL), SHMBUS_OK);
            CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
            CHECK((int)f.kind == k && (int)f.event_type == e);
        }
    }

    /* A topic that does not match is not delivered; timeouts leave the frame and the last error alone. */
    CHECK_RC(shmbus_publish(bus, "metrics.cpu", "1", 1, NULL), SHMBUS_OK);
    set_marker_error();
    shmbus_frame_t untouched;
    memset(&untouched, 0xab, sizeof untouched);
    shmbus_frame_t g = untouched;
    double t0 = now_ms();
    CHECK_RC(shmbus_recv(sub, 30, &g), SHMBUS_TIMEOUT);
    CHECK(now_ms() - t0 >= 25);
    CHECK(memcmp(&g, &untouched, sizeof g) == 0);
    CHECK(strcmp(shmbus_last_error(), MARKER) == 0);
    CHECK_RC(shmbus_recv(sub, 0, &g), SHMBUS_TIMEOUT);

    /* Negative timeout waits as long as needed (here a frame is ready). */
    CHECK_RC(shmbus_publish(bus, "events.process.exit", "bye", 3, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_recv(sub, -1, &f), SHMBUS_OK);
    CHECK(payload_is(&f, "bye"));

    /* Empty payloads: NULL is fine with length 0, and the frame's payload is never NULL. */
    CHECK_RC(shmbus_publish(bus, "events.process.empty", NULL, 0, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.payload_len == 0 && f.payload != NULL);

    /* Longest topic: the NUL-terminated copy holds all 255 bytes. */
    char topic[SHMBUS_MAX_TOPIC_LEN + 2];
    memset(topic, 't', SHMBUS_MAX_TOPIC_LEN);
    topic[SHMBUS_MAX_TOPIC_LEN] = '\0';
    CHECK_RC(shmbus_publish(bus, topic, "l", 1, NULL), SHMBUS_OK);
    topic[SHMBUS_MAX_TOPIC_LEN] = 't';
    topic[SHMBUS_MAX_TOPIC_LEN + 1] = '\0';
    CHECK_ERR(shmbus_publish(bus, topic, "l", 1, NULL), SHMBUS_INVALID_TOPIC, "shmbus_publish", "256 bytes");

    /* Largest payload passes, one more byte is TOO_LARGE. */
    static char big[4097];
    memset(big, 'b', sizeof big);
    CHECK_RC(shmbus_publish(bus, "big.frame", big, 4096, NULL), SHMBUS_OK);
    CHECK_ERR(shmbus_publish(bus, "big.frame", big, 4097, NULL), SHMBUS_TOO_LARGE, "shmbus_publish", "4097");
    CHECK_ERR(shmbus_publish_with(bus, &m, "big.frame", big, 4097, NULL), SHMBUS_TOO_LARGE, "shmbus_publish_with",
              "max_frame_size is 4096");

    /* The catch-all subscriber saw everything, in order. */
    uint64_t expect = 0;
    int got_long = 0, got_big = 0;
    while (shmbus_recv(all, 0, &f) == SHMBUS_OK) {
        CHECK(f.seq == expect);
        expect++;
        if (f.topic_len == SHMBUS_MAX_TOPIC_LEN) {
            got_long = strlen(f.topic) == SHMBUS_MAX_TOPIC_LEN;
        }
        if (f.payload_len == 4096) {
            got_big = memcmp(f.payload, big, 4096) == 0;
        }
    }
    CHECK(got_long && got_big);
    CHECK(shmbus_sub_delivered(all) == expect);

    /* publish: each NULL argument and each bad topic. */
    CHECK_ERR(shmbus_publish(NULL, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish", "`bus` is NULL");
    CHECK_ERR(shmbus_publish(bus, NULL, "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish", "`topic` is NULL");
    CHECK_ERR(shmbus_publish(bus, "a.b", NULL, 5, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish",
              "`payload` is NULL");
    CHECK_ERR(shmbus_publish(bus, "a.\xff", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish", "UTF-8");
    const char *bad_topics[] = {"", "a..b", "a.#", "a.+", "has space", ".a", "a.", "tab\there"};
    for (size_t i = 0; i < sizeof bad_topics / sizeof bad_topics[0]; i++) {
        CHECK_ERR(shmbus_publish(bus, bad_topics[i], "x", 1, NULL), SHMBUS_INVALID_TOPIC, "shmbus_publish",
                  "invalid topic");
        CHECK_ERR(shmbus_publish_with(bus, &m, bad_topics[i], "x", 1, NULL), SHMBUS_INVALID_TOPIC,
                  "shmbus_publish_with", "invalid topic");
    }

    /* publish_with: each NULL argument and each bad metadata value. */
    shmbus_meta_t ok = shmbus_meta_default();
    CHECK_ERR(shmbus_publish_with(NULL, &ok, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "`bus` is NULL");
    CHECK_ERR(shmbus_publish_with(bus, NULL, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "`meta` is NULL");
    CHECK_ERR(shmbus_publish_with(bus, &ok, NULL, "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "`topic` is NULL");
    CHECK_ERR(shmbus_publish_with(bus, &ok, "a.b", NULL, 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "`payload` is NULL");
    CHECK_ERR(shmbus_publish_with(bus, &ok, "\xff", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "UTF-8");
    shmbus_meta_t zero;
    memset(&zero, 0, sizeof zero);
    CHECK_ERR(shmbus_publish_with(bus, &zero, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "SHMBUS_KIND_PADDING");
    shmbus_meta_t bad = ok;
    bad.kind = 5;
    CHECK_ERR(shmbus_publish_with(bus, &bad, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "field `kind` is 5");
    bad = ok;
    bad.event_type = 4;
    CHECK_ERR(shmbus_publish_with(bus, &bad, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "field `event_type` is 4");
    bad.event_type = -1;
    CHECK_ERR(shmbus_publish_with(bus, &bad, "a.b", "x", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_with",
              "field `event_type` is -1");

    /* recv: each NULL argument. */
    CHECK_ERR(shmbus_recv(NULL, 0, &f), SHMBUS_INVALID_ARGUMENT, "shmbus_recv", "`sub` is NULL");
    CHECK_ERR(shmbus_recv(sub, 0, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_recv", "`out_frame` is NULL");

    /* stats: values and each NULL argument. */
    shmbus_stats_t st;
    memset(&st, 0, sizeof st);
    CHECK_RC(shmbus_stats(bus, &st), SHMBUS_OK);
    CHECK(st.published == expect && st.next_seq == expect && st.claimed == expect);
    CHECK(st.oldest_seq == 0 && st.evicted == 0 && st.rejected == 0 && st.aborted == 0 && st.abandoned == 0);
    CHECK(st.subscribers == 2 && st.subscribers_alive == 2 && st.groups == 0 && st.producers == 1);
    CHECK(st.memory_limit <= 1 << 20 && st.memory_limit > 1 << 19 && st.keep_ratio == 0.9);
    CHECK(st.bytes_used > 4096 && st.data_capacity > st.bytes_used && st.partitions >= 2);
    CHECK_ERR(shmbus_stats(NULL, &st), SHMBUS_INVALID_ARGUMENT, "shmbus_stats", "`bus` is NULL");
    CHECK_ERR(shmbus_stats(bus, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_stats", "`out_stats` is NULL");

    shmbus_sub_close(sub);
    shmbus_sub_close(all);
    CHECK_RC(shmbus_stats(bus, &st), SHMBUS_OK);
    CHECK(st.subscribers == 0);
    shmbus_close(bus);
}

struct thread_call {
    shmbus_bus_t *bus;
    shmbus_claim_t *claim;
    int rc_commit, rc_abort, rc_publish;
    char error[256];
};

static void *claim_from_other_thread(void *arg) {
    struct thread_call *t = arg;
    t->rc_commit = shmbus_claim_commit(t->claim, NULL);
    t->rc_abort = shmbus_claim_abort(t->claim);
    snprintf(t->error, sizeof t->error, "%s", shmbus_last_error());
    return NULL;
}

static void *publish_from_other_thread(void *arg) {
    struct thread_call *t = arg;
    t->rc_publish = shmbus_publish(t->bus, "other.thread", "o", 1, NULL);
    snprintf(t->error, sizeof t->error, "%s", shmbus_last_error());
    return NULL;
}

/* What recv_many's callback saw. */
struct seen {
    int n;
    uint64_t seqs[16];
    char payloads[16][24];
};

static void record_frame(void *ctx, const shmbus_frame_t *f) {
    struct seen *s = ctx;
    if (s->n < 16) {
        s->seqs[s->n] = f->seq;
        snprintf(s->payloads[s->n], sizeof s->payloads[0], "%.*s", (int)f->payload_len, (const char *)f->payload);
    }
    s->n++;
}

/* recv_many: frames to the callback in order, up to max; TIMEOUT when none. */
static void test_recv_many(void) {
    const char *name = new_name("recvmany");
    shmbus_config_t cfg = small_cfg();
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_sub_t *sub = NULL;
    CHECK_RC(shmbus_subscribe(bus, "#", &sub), SHMBUS_OK);
    char text[10][8];
    shmbus_payload_t list[10];
    for (int i = 0; i < 10; i++) {
        snprintf(text[i], sizeof text[i], "m%d", i);
        list[i].data = text[i];
        list[i].len = strlen(text[i]);
    }
    CHECK_RC(shmbus_publish_many(bus, "t", list, 10, NULL), SHMBUS_OK);

    struct seen s = {0};
    size_t count = 99;
    CHECK_RC(shmbus_recv_many(sub, 4, 1000, record_frame, &s, &count), SHMBUS_OK);
    CHECK(count == 4 && s.n == 4);
    CHECK_RC(shmbus_recv_many(sub, 100, 0, record_frame, &s, &count), SHMBUS_OK);
    CHECK(count == 6 && s.n == 10);
    int in_order = 1;
    for (int i = 0; i < 10; i++) {
        in_order &= s.seqs[i] == (uint64_t)i && strcmp(s.payloads[i], text[i]) == 0;
    }
    CHECK(in_order);
    count = 99;
    CHECK_RC(shmbus_recv_many(sub, 100, 5, record_frame, &s, &count), SHMBUS_TIMEOUT);
    CHECK(count == 99 && s.n == 10);
    CHECK_RC(shmbus_recv_many(sub, 0, 0, record_frame, &s, &count), SHMBUS_OK);
    CHECK(count == 0);
    CHECK_ERR(shmbus_recv_many(sub, 1, 0, NULL, &s, &count), SHMBUS_INVALID_ARGUMENT, "shmbus_recv_many",
              "`callback` is NULL");
    CHECK_RC(shmbus_recv_many(NULL, 1, 0, record_frame, &s, &count), SHMBUS_INVALID_ARGUMENT);
    CHECK(s.n == 10);

    shmbus_sub_close(sub);
    shmbus_close(bus);
    CHECK_RC(shmbus_remove(name), SHMBUS_OK);
}

/* publish_many: consecutive seqs in order, metadata on every frame, and
 * bad arguments refused before anything is published. */
static void test_publish_many(void) {
    const char *name = new_name("many");
    shmbus_config_t cfg = small_cfg();
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_sub_t *sub = NULL;
    CHECK_RC(shmbus_subscribe(bus, "#", &sub), SHMBUS_OK);

    enum { N = 500 };
    static char bufs[N][24];
    shmbus_payload_t list[N];
    for (int i = 0; i < N; i++) {
        int n = snprintf(bufs[i], sizeof bufs[i], "payload-%d", i);
        list[i].data = bufs[i];
        list[i].len = (size_t)n;
    }
    uint64_t last = 999;
    CHECK_RC(shmbus_publish_many(bus, "events.net.flow", list, N, &last), SHMBUS_OK);
    CHECK(last == N - 1);
    shmbus_frame_t f;
    int in_order = 1;
    for (int i = 0; i < N; i++) {
        CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
        in_order &= f.seq == (uint64_t)i && payload_is(&f, bufs[i]) && strcmp(f.topic, "events.net.flow") == 0;
    }
    CHECK(in_order);

    /* With metadata; an empty payload may have NULL data. */
    shmbus_meta_t m = shmbus_meta_default();
    m.kind = SHMBUS_KIND_ALERT;
    m.root_id[0] = 7;
    shmbus_payload_t two[2] = {{"ab", 2}, {NULL, 0}};
    CHECK_RC(shmbus_publish_many_with(bus, &m, "alerts.x", two, 2, &last), SHMBUS_OK);
    CHECK(last == N + 1);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.kind == SHMBUS_KIND_ALERT && f.root_id[0] == 7 && payload_is(&f, "ab"));
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == N + 1 && f.payload_len == 0 && f.root_id[0] == 7);

    /* Nothing to publish: OK, *out_last_seq untouched. */
    last = 42;
    CHECK_RC(shmbus_publish_many(bus, "t", NULL, 0, &last), SHMBUS_OK);
    CHECK(last == 42);

    /* Refused arguments publish nothing. */
    static char big[8192];
    shmbus_payload_t bad_len[3] = {{"a", 1}, {big, sizeof big}, {"c", 1}};
    shmbus_payload_t bad_ptr[2] = {{"a", 1}, {NULL, 3}};
    CHECK_ERR(shmbus_publish_many(bus, "t", NULL, 2, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_many",
              "`payloads` is NULL");
    CHECK_ERR(shmbus_publish_many(bus, "t", bad_ptr, 2, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_publish_many",
              "payloads[i].data");
    CHECK_RC(shmbus_publish_many(bus, "t", bad_len, 3, NULL), SHMBUS_TOO_LARGE);
    CHECK_RC(shmbus_publish_many(bus, "bad..topic", two, 2, NULL), SHMBUS_INVALID_TOPIC);
    CHECK_ERR(shmbus_publish_many_with(bus, NULL, "t", two, 2, NULL), SHMBUS_INVALID_ARGUMENT,
              "shmbus_publish_many_with", "`meta` is NULL");
    CHECK_RC(shmbus_publish_many(NULL, "t", two, 2, NULL), SHMBUS_INVALID_ARGUMENT);
    CHECK_RC(shmbus_recv(sub, 0, &f), SHMBUS_TIMEOUT);

    shmbus_sub_close(sub);
    shmbus_close(bus);
    CHECK_RC(shmbus_remove(name), SHMBUS_OK);
}

static void test_claims(void) {
    const char *name = new_name("claim");
    shmbus_config_t cfg = small_cfg();
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_sub_t *sub = NULL;
    CHECK_RC(shmbus_subscribe(bus, "claims.#", &sub), SHMBUS_OK);
    shmbus_frame_t f;

    /* claim, fill in place, commit. */
    shmbus_claim_t *c = NULL;
    CHECK_RC(shmbus_claim(bus, "claims.a", 16, &c), SHMBUS_OK);
    CHECK(c != NULL);
    CHECK(shmbus_claim_len(c) == 16);
    uint8_t *p = shmbus_claim_payload(c);
    CHECK(p != NULL && all_zero(p, 16)); /* starts zeroed */
    memcpy(p, "0123456789abcdef", 16);

    /* While the claim is open this thread cannot publish or claim on the bus. */
    shmbus_claim_t *c2 = NULL;
    CHECK_ERR(shmbus_publish(bus, "claims.b", "x", 1, NULL), SHMBUS_CLAIM_OUTSTANDING, "shmbus_publish",
              "uncommitted claim");
    CHECK_ERR(shmbus_claim(bus, "claims.b", 1, &c2), SHMBUS_CLAIM_OUTSTANDING, "shmbus_claim", "uncommitted claim");
    CHECK(c2 == NULL);

    /* Another thread can neither commit nor abort it; the claim stays open. */
    struct thread_call t = {.bus = bus, .claim = c};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, claim_from_other_thread, &t) == 0);
    pthread_join(th, NULL);
    CHECK_RC(t.rc_commit, SHMBUS_WRONG_THREAD);
    CHECK_RC(t.rc_abort, SHMBUS_WRONG_THREAD);
    CHECK(strstr(t.error, "shmbus_claim_abort: ") == t.error);
    CHECK(strstr(t.error, "thread") != NULL);

    uint64_t seq = 999;
    CHECK_RC(shmbus_claim_commit(c, &seq), SHMBUS_OK);
    CHECK(seq == 0);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == 0 && payload_is(&f, "0123456789abcdef") && strcmp(f.topic, "claims.a") == 0);

    /* Abort: readers skip the frame; the thread may publish again. */
    CHECK_RC(shmbus_claim(bus, "claims.aborted", 4, &c), SHMBUS_OK);
    memcpy(shmbus_claim_payload(c), "nope", 4);
    CHECK_RC(shmbus_claim_abort(c), SHMBUS_OK);
    CHECK_RC(shmbus_publish(bus, "claims.after", "after", 5, &seq), SHMBUS_OK);
    CHECK(seq == 2);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == 2 && payload_is(&f, "after"));
    shmbus_stats_t st;
    CHECK_RC(shmbus_stats(bus, &st), SHMBUS_OK);
    CHECK(st.aborted == 1 && st.claimed == 3);

    /* Zero-length claims have a non-NULL payload pointer; commit with a NULL seq. */
    CHECK_RC(shmbus_claim(bus, "claims.empty", 0, &c), SHMBUS_OK);
    CHECK(shmbus_claim_payload(c) != NULL && shmbus_claim_len(c) == 0);
    CHECK_RC(shmbus_claim_commit(c, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.payload_len == 0 && strcmp(f.topic, "claims.empty") == 0);

    /* claim_with carries metadata. */
    shmbus_meta_t m = shmbus_meta_default();
    m.kind = SHMBUS_KIND_ALERT;
    m.event_type = SHMBUS_EVENT_NEW;
    m.root_id[0] = 7;
    CHECK_RC(shmbus_claim_with(bus, &m, "claims.meta", 2, &c), SHMBUS_OK);
    memcpy(shmbus_claim_payload(c), "mm", 2);
    CHECK_RC(shmbus_claim_commit(c, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(f.kind == SHMBUS_KIND_ALERT && f.event_type == SHMBUS_EVENT_NEW && f.root_id[0] == 7);
    CHECK(payload_is(&f, "mm"));

    /* A claim keeps working after its bus handle is closed. */
    shmbus_bus_t *second = NULL;
    CHECK_RC(shmbus_open(name, &second), SHMBUS_OK);
    CHECK_RC(shmbus_claim(second, "claims.orphan", 3, &c), SHMBUS_OK);
    shmbus_close(second);
    memcpy(shmbus_claim_payload(c), "orp", 3);
    CHECK_RC(shmbus_claim_commit(c, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_recv(sub, 1000, &f), SHMBUS_OK);
    CHECK(payload_is(&f, "orp"));

    /* Error paths of claim and claim_with. */
    static char big[4097];
    c = NULL;
    CHECK_ERR(shmbus_claim(NULL, "a.b", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim", "`bus` is NULL");
    CHECK_ERR(shmbus_claim(bus, NULL, 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim", "`topic` is NULL");
    CHECK_ERR(shmbus_claim(bus, "a.b", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_claim", "`out_claim` is NULL");
    CHECK_ERR(shmbus_claim(bus, "a.\xff", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim", "UTF-8");
    CHECK_ERR(shmbus_claim(bus, "a.#", 1, &c), SHMBUS_INVALID_TOPIC, "shmbus_claim", "invalid topic");
    CHECK_ERR(shmbus_claim(bus, "a.b", sizeof big, &c), SHMBUS_TOO_LARGE, "shmbus_claim", "4097");
    CHECK_ERR(shmbus_claim_with(NULL, &m, "a.b", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with",
              "`bus` is NULL");
    CHECK_ERR(shmbus_claim_with(bus, NULL, "a.b", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with",
              "`meta` is NULL");
    CHECK_ERR(shmbus_claim_with(bus, &m, NULL, 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with",
              "`topic` is NULL");
    CHECK_ERR(shmbus_claim_with(bus, &m, "a.b", 1, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with",
              "`out_claim` is NULL");
    CHECK_ERR(shmbus_claim_with(bus, &m, "\xff", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with", "UTF-8");
    CHECK_ERR(shmbus_claim_with(bus, &m, "a..b", 1, &c), SHMBUS_INVALID_TOPIC, "shmbus_claim_with",
              "invalid topic");
    CHECK_ERR(shmbus_claim_with(bus, &m, "a.b", sizeof big, &c), SHMBUS_TOO_LARGE, "shmbus_claim_with", "4097");
    shmbus_meta_t bad = m;
    bad.kind = SHMBUS_KIND_PADDING;
    CHECK_ERR(shmbus_claim_with(bus, &bad, "a.b", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with",
              "SHMBUS_KIND_PADDING");
    bad = m;
    bad.event_type = 99;
    CHECK_ERR(shmbus_claim_with(bus, &bad, "a.b", 1, &c), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_with",
              "event_type");
    CHECK(c == NULL);

    /* Plain-value accessors on NULL return 0/NULL and say so. */
    CHECK(shmbus_claim_payload(NULL) == NULL);
    CHECK(strcmp(shmbus_last_error(), "shmbus_claim_payload: argument `claim` is NULL") == 0);
    CHECK(shmbus_claim_len(NULL) == 0);
    CHECK(strcmp(shmbus_last_error(), "shmbus_claim_len: argument `claim` is NULL") == 0);
    CHECK_ERR(shmbus_claim_commit(NULL, &seq), SHMBUS_INVALID_ARGUMENT, "shmbus_claim_commit", "`claim` is NULL");
    CHECK_RC(shmbus_claim_abort(NULL), SHMBUS_OK);

    /* No frame leaked through: the subscriber has nothing else. */
    CHECK_RC(shmbus_recv(sub, 0, &f), SHMBUS_TIMEOUT);
    shmbus_sub_close(sub);
    shmbus_close(bus);
}

static void *publish_later(void *arg) {
    struct thread_call *t = arg;
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    t->rc_publish = shmbus_publish(t->bus, "wake.up", "w", 1, NULL);
    return NULL;
}

static void test_subscribe_variants(void) {
    const char *name = new_name("subs");
    shmbus_config_t cfg = small_cfg();
    cfg.listener_limit = 4;
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_frame_t f;
    shmbus_sub_t *s = NULL;

    /* Frames published before anyone subscribed. */
    CHECK_RC(shmbus_publish(bus, "new:observable:url", "n", 1, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_publish(bus, "update:observable:ip", "u", 1, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_publish(bus, "observable:new:x", "o", 1, NULL), SHMBUS_OK);

    /* subscribe: errors. */
    CHECK_ERR(shmbus_subscribe(NULL, "a.#", &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe", "`bus` is NULL");
    CHECK_ERR(shmbus_subscribe(bus, NULL, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe", "`pattern` is NULL");
    CHECK_ERR(shmbus_subscribe(bus, "a.#", NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe", "`out_sub` is NULL");
    CHECK_ERR(shmbus_subscribe(bus, "a.\xff", &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe", "UTF-8");
    CHECK_ERR(shmbus_subscribe(bus, "a.#.b", &s), SHMBUS_INVALID_TOPIC, "shmbus_subscribe", "a.#.b");
    CHECK_ERR(shmbus_subscribe(bus, "ev+", &s), SHMBUS_INVALID_TOPIC, "shmbus_subscribe", "invalid topic pattern");

    /* subscribe_regex: matching from the start of the topic, and errors. */
    CHECK_RC(shmbus_subscribe_regex(bus, "(new|update):", &s), SHMBUS_OK);
    CHECK_RC(shmbus_publish(bus, "new:observable:url", "n2", 2, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_publish(bus, "observable:new:y", "skip", 4, NULL), SHMBUS_OK);
    CHECK_RC(shmbus_recv(s, 1000, &f), SHMBUS_OK);
    CHECK(payload_is(&f, "n2"));
    CHECK_RC(shmbus_recv(s, 0, &f), SHMBUS_TIMEOUT);
    shmbus_sub_close(s);
    s = NULL;
    CHECK_ERR(shmbus_subscribe_regex(NULL, "a", &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_regex",
              "`bus` is NULL");
    CHECK_ERR(shmbus_subscribe_regex(bus, NULL, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_regex",
              "`regex` is NULL");
    CHECK_ERR(shmbus_subscribe_regex(bus, "a", NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_regex",
              "`out_sub` is NULL");
    CHECK_ERR(shmbus_subscribe_regex(bus, "\xff", &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_regex", "UTF-8");
    CHECK_ERR(shmbus_subscribe_regex(bus, "(unclosed", &s), SHMBUS_INVALID_TOPIC, "shmbus_subscribe_regex",
              "invalid regex");
    CHECK(s == NULL);

    /* subscribe_with: start positions, filter kinds, wait strategies. */
    shmbus_subscribe_options_t o = shmbus_subscribe_options_default();
    o.start = SHMBUS_START_OLDEST;
    CHECK_RC(shmbus_subscribe_with(bus, "#", &o, &s), SHMBUS_OK);
    for (uint64_t i = 0; i < 5; i++) {
        CHECK_RC(shmbus_recv(s, 1000, &f), SHMBUS_OK);
        CHECK(f.seq == i);
    }
    shmbus_sub_close(s);

    o.start = SHMBUS_START_SEQ;
    o.start_seq = 3;
    CHECK_RC(shmbus_subscribe_with(bus, "#", &o, &s), SHMBUS_OK);
    CHECK_RC(shmbus_recv(s, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == 3);
    CHECK(shmbus_sub_missed(s) == 0);
    shmbus_sub_close(s);

    o = shmbus_subscribe_options_default();
    o.start = SHMBUS_START_OLDEST;
    o.filter = SHMBUS_FILTER_REGEX;
    o.wait = SHMBUS_WAIT_SPIN;
    CHECK_RC(shmbus_subscribe_with(bus, "update:", &o, &s), SHMBUS_OK);
    CHECK_RC(shmbus_recv(s, 1000, &f), SHMBUS_OK);
    CHECK(payload_is(&f, "u"));
    CHECK_RC(shmbus_recv(s, 5, &f), SHMBUS_TIMEOUT);
    shmbus_sub_close(s);

    /* Park: a publish from another thread wakes a parked receiver. */
    o = shmbus_subscribe_options_default();
    o.wait = SHMBUS_WAIT_PARK;
    CHECK_RC(shmbus_subscribe_with(bus, "wake.#", &o, &s), SHMBUS_OK);
    struct thread_call t = {.bus = bus};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, publish_later, &t) == 0);
    CHECK_RC(shmbus_recv(s, 5000, &f), SHMBUS_OK);
    CHECK(strcmp(f.topic, "wake.up") == 0);
    pthread_join(th, NULL);
    CHECK_RC(t.rc_publish, SHMBUS_OK);
    shmbus_sub_close(s);

    o = shmbus_subscribe_options_default();
    o.wait = SHMBUS_WAIT_SPIN_THEN_PARK;
    o.spin_us = 0;
    CHECK_RC(shmbus_subscribe_with(bus, "#", &o, &s), SHMBUS_OK);
    CHECK_RC(shmbus_recv(s, 5, &f), SHMBUS_TIMEOUT);
    shmbus_sub_close(s);
    s = NULL;

    /* subscribe_with: errors, including each bad enum value. */
    o = shmbus_subscribe_options_default();
    CHECK_ERR(shmbus_subscribe_with(NULL, "#", &o, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "`bus` is NULL");
    CHECK_ERR(shmbus_subscribe_with(bus, NULL, &o, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "`filter` is NULL");
    CHECK_ERR(shmbus_subscribe_with(bus, "#", NULL, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "`options` is NULL");
    CHECK_ERR(shmbus_subscribe_with(bus, "#", &o, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "`out_sub` is NULL");
    CHECK_ERR(shmbus_subscribe_with(bus, "\xff", &o, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "UTF-8");
    CHECK_ERR(shmbus_subscribe_with(bus, "a.#.b", &o, &s), SHMBUS_INVALID_TOPIC, "shmbus_subscribe_with",
              "invalid topic pattern");
    o.filter = SHMBUS_FILTER_REGEX;
    CHECK_ERR(shmbus_subscribe_with(bus, "(", &o, &s), SHMBUS_INVALID_TOPIC, "shmbus_subscribe_with",
              "invalid regex");
    o = shmbus_subscribe_options_default();
    o.filter = 5;
    CHECK_ERR(shmbus_subscribe_with(bus, "#", &o, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "field `filter` is 5");
    o = shmbus_subscribe_options_default();
    o.start = 9;
    CHECK_ERR(shmbus_subscribe_with(bus, "#", &o, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "field `start` is 9");
    o = shmbus_subscribe_options_default();
    o.wait = -1;
    CHECK_ERR(shmbus_subscribe_with(bus, "#", &o, &s), SHMBUS_INVALID_ARGUMENT, "shmbus_subscribe_with",
              "field `wait` is -1");
    CHECK(s == NULL);

    /* The subscriber table is full at listener_limit; closing frees an entry. */
    shmbus_sub_t *subs[4];
    for (int i = 0; i < 4; i++) {
        subs[i] = NULL;
        CHECK_RC(shmbus_subscribe(bus, "#", &subs[i]), SHMBUS_OK);
    }
    CHECK_ERR(shmbus_subscribe(bus, "#", &s), SHMBUS_LIMIT, "shmbus_subscribe", "limit reached (4)");
    CHECK_ERR(shmbus_join_group(bus, "g", "#", &s), SHMBUS_LIMIT, "shmbus_join_group", "limit");
    shmbus_sub_close(subs[0]);
    CHECK_RC(shmbus_subscribe(bus, "#", &subs[0]), SHMBUS_OK);

    /* A subscriber keeps working after its bus handle is closed. */
    shmbus_bus_t *second = NULL;
    CHECK_RC(shmbus_open(name, &second), SHMBUS_OK);
    shmbus_close(bus);
    CHECK_RC(shmbus_publish(second, "after.close", "ac", 2, NULL), SHMBUS_OK);
    for (int i = 0; i < 4; i++) {
        CHECK_RC(shmbus_recv(subs[i], 1000, &f), SHMBUS_OK);
        CHECK(payload_is(&f, "ac"));
        shmbus_sub_close(subs[i]);
    }
    shmbus_close(second);
}

static void test_groups(void) {
    const char *name = new_name("group");
    shmbus_config_t cfg = small_cfg();
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_frame_t f;
    shmbus_sub_t *a = NULL, *b = NULL, *x = NULL;

    CHECK_RC(shmbus_join_group(bus, "workers", "jobs.#", &a), SHMBUS_OK);
    CHECK_RC(shmbus_join_group(bus, "workers", "jobs.#", &b), SHMBUS_OK);
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        CHECK_RC(shmbus_publish(bus, "jobs.run", &i, sizeof i, NULL), SHMBUS_OK);
    }
    CHECK_RC(shmbus_publish(bus, "other.topic", "x", 1, NULL), SHMBUS_OK);
    int seen[N] = {0};
    int from_a = 0, from_b = 0;
    for (int round = 0; round < 4 * N; round++) {
        shmbus_sub_t *who = (round % 2) ? b : a;
        if (shmbus_recv(who, 0, &f) != SHMBUS_OK) {
            continue;
        }
        int i;
        CHECK(f.payload_len == sizeof i);
        memcpy(&i, f.payload, sizeof i);
        CHECK(i >= 0 && i < N);
        if (i >= 0 && i < N) {
            seen[i]++;
        }
        (who == a) ? from_a++ : from_b++;
    }
    for (int i = 0; i < N; i++) {
        CHECK(seen[i] == 1); /* each frame to exactly one member */
    }
    CHECK(from_a > 0 && from_b > 0);
    CHECK(shmbus_sub_delivered(a) + shmbus_sub_delivered(b) == N);
    shmbus_stats_t st;
    CHECK_RC(shmbus_stats(bus, &st), SHMBUS_OK);
    CHECK(st.groups == 1 && st.subscribers == 2);

    /* Members must share the filter; group names are checked. */
    CHECK_ERR(shmbus_join_group(bus, "workers", "other.#", &x), SHMBUS_GROUP_MISMATCH, "shmbus_join_group",
              "jobs.#");
    CHECK_ERR(shmbus_join_group(bus, "", "jobs.#", &x), SHMBUS_INVALID_NAME, "shmbus_join_group", "group names");
    CHECK_ERR(shmbus_join_group(bus, "has space", "jobs.#", &x), SHMBUS_INVALID_NAME, "shmbus_join_group",
              "whitespace");
    char long_group[SHMBUS_MAX_GROUP_LEN + 2];
    memset(long_group, 'g', SHMBUS_MAX_GROUP_LEN + 1);
    long_group[SHMBUS_MAX_GROUP_LEN + 1] = '\0';
    CHECK_ERR(shmbus_join_group(bus, long_group, "jobs.#", &x), SHMBUS_INVALID_NAME, "shmbus_join_group",
              "1..=64 bytes");
    CHECK_ERR(shmbus_join_group(NULL, "g", "#", &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group", "`bus` is NULL");
    CHECK_ERR(shmbus_join_group(bus, NULL, "#", &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group",
              "`group` is NULL");
    CHECK_ERR(shmbus_join_group(bus, "g", NULL, &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group",
              "`pattern` is NULL");
    CHECK_ERR(shmbus_join_group(bus, "g", "#", NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group",
              "`out_sub` is NULL");
    CHECK_ERR(shmbus_join_group(bus, "g\xff", "#", &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group", "UTF-8");
    CHECK_ERR(shmbus_join_group(bus, "g", "a.#.b", &x), SHMBUS_INVALID_TOPIC, "shmbus_join_group", "a.#.b");
    CHECK(x == NULL);

    /* join_group_with: a new group starting at the oldest frame, with a regex. */
    shmbus_subscribe_options_t o = shmbus_subscribe_options_default();
    o.start = SHMBUS_START_OLDEST;
    o.filter = SHMBUS_FILTER_REGEX;
    CHECK_RC(shmbus_join_group_with(bus, "auditors", "other\\.", &o, &x), SHMBUS_OK);
    CHECK_RC(shmbus_recv(x, 1000, &f), SHMBUS_OK);
    CHECK(strcmp(f.topic, "other.topic") == 0 && f.seq == N);
    shmbus_sub_close(x);
    x = NULL;
    CHECK_ERR(shmbus_join_group_with(NULL, "g", "#", &o, &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group_with",
              "`bus` is NULL");
    CHECK_ERR(shmbus_join_group_with(bus, NULL, "#", &o, &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group_with",
              "`group` is NULL");
    CHECK_ERR(shmbus_join_group_with(bus, "g", NULL, &o, &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group_with",
              "`filter` is NULL");
    CHECK_ERR(shmbus_join_group_with(bus, "g", "#", NULL, &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group_with",
              "`options` is NULL");
    CHECK_ERR(shmbus_join_group_with(bus, "g", "#", &o, NULL), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group_with",
              "`out_sub` is NULL");
    CHECK_ERR(shmbus_join_group_with(bus, "g", "(", &o, &x), SHMBUS_INVALID_TOPIC, "shmbus_join_group_with",
              "invalid regex");
    CHECK_ERR(shmbus_join_group_with(bus, "", "#", &o, &x), SHMBUS_INVALID_NAME, "shmbus_join_group_with",
              "group names");
    o.wait = 3;
    CHECK_ERR(shmbus_join_group_with(bus, "g", "#", &o, &x), SHMBUS_INVALID_ARGUMENT, "shmbus_join_group_with",
              "field `wait` is 3");
    CHECK(x == NULL);

    shmbus_sub_close(a);
    shmbus_sub_close(b);
    shmbus_close(bus);
}

static void test_eviction_and_counters(void) {
    const char *name = new_name("evict");
    shmbus_config_t cfg = shmbus_config_default();
    cfg.memory_limit = 128 << 10;
    cfg.max_frame_size = 1024;
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_sub_t *sub = NULL;
    CHECK_RC(shmbus_subscribe(bus, "#", &sub), SHMBUS_OK);
    char payload[512];
    memset(payload, 'p', sizeof payload);
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        CHECK_RC(shmbus_publish(bus, "fill.up", payload, sizeof payload, NULL), SHMBUS_OK);
    }
    shmbus_frame_t f;
    uint64_t got = 0;
    while (shmbus_recv(sub, 0, &f) == SHMBUS_OK) {
        got++;
    }
    CHECK(shmbus_sub_missed(sub) > 0);
    CHECK(shmbus_sub_delivered(sub) == got);
    CHECK(got + shmbus_sub_missed(sub) == N);
    CHECK(shmbus_sub_abandoned(sub) == 0);
    shmbus_stats_t st;
    CHECK_RC(shmbus_stats(bus, &st), SHMBUS_OK);
    CHECK(st.evicted > 0 && st.oldest_seq > 0 && st.next_seq == N);

    CHECK(shmbus_sub_missed(NULL) == 0);
    CHECK(strcmp(shmbus_last_error(), "shmbus_sub_missed: argument `sub` is NULL") == 0);
    CHECK(shmbus_sub_delivered(NULL) == 0);
    CHECK(strcmp(shmbus_last_error(), "shmbus_sub_delivered: argument `sub` is NULL") == 0);
    CHECK(shmbus_sub_abandoned(NULL) == 0);
    CHECK(strcmp(shmbus_last_error(), "shmbus_sub_abandoned: argument `sub` is NULL") == 0);

    /* START_SEQ before the oldest retained frame counts the evicted ones as missed. */
    shmbus_subscribe_options_t o = shmbus_subscribe_options_default();
    o.start = SHMBUS_START_SEQ;
    o.start_seq = 0;
    shmbus_sub_t *late = NULL;
    CHECK_RC(shmbus_subscribe_with(bus, "#", &o, &late), SHMBUS_OK);
    CHECK(shmbus_sub_missed(late) == st.oldest_seq);
    CHECK_RC(shmbus_recv(late, 1000, &f), SHMBUS_OK);
    CHECK(f.seq == st.oldest_seq);
    shmbus_sub_close(late);
    shmbus_sub_close(sub);
    shmbus_close(bus);
}

static void test_overflow_policies(void) {
    /* REJECT: a lagging live subscriber makes publishing fail with FULL. */
    const char *name = new_name("reject");
    shmbus_config_t cfg = shmbus_config_default();
    cfg.memory_limit = 128 << 10;
    cfg.max_frame_size = 1024;
    cfg.overflow = SHMBUS_OVERFLOW_REJECT;
    cfg.checksum = true;
    shmbus_bus_t *bus = make_bus(name, &cfg);
    shmbus_sub_t *sub = NULL;
    CHECK_RC(shmbus_subscribe(bus, "#", &sub), SHMBUS_OK);
    char payload[512];
    memset(payload, 'r', sizeof payload);
    int rc = SHMBUS_OK, published = 0;
    while (published < 10000 && (rc = shmbus_publish(bus, "fill.up", payload, sizeof payload, NULL)) == SHMBUS_OK) {
        published++;
    }
    CHECK_RC(rc, SHMBUS_FULL);
    CHECK(strstr(shmbus_last_error(), "shmbus_publish: bus is full") != NULL);
    CHECK(published > 10 && published < 10000);
    shmbus_stats_t st;
    CHECK_RC(shmbus_stats(bus, &st), SHMBUS_OK);
    CHECK(st.rejected >= 1 && st.evicted == 0);
    shmbus_claim_t *c = NULL;
    CHECK_ERR(shmbus_claim(bus, "fill.up", 512, &c), SHMBUS_FULL, "shmbus_claim", "full");
    /* Once the subscriber has read everything, publishing works again. */
    shmbus_frame_t f;
    int got = 0;
    while (shmbus_recv(sub, 0, &f) == SHMBUS_OK) {
        CHECK(f.payload_len == sizeof payload && memcmp(f.payload, payload, sizeof payload) == 0);
        got++;
    }
    CHECK(got == published && shmbus_sub_missed(sub) == 0);
    CHECK_RC(shmbus_publish(bus, "fill.up", payload, sizeof payload, NULL), SHMBUS_OK);
    shmbus_sub_close(sub);
    shmbus_close(bus);

    /* BLOCK: publishing waits block_timeout_ms, then fails with FULL. */
    name = new_name("block");
    cfg.overflow = SHMBUS_OVERFLOW_BLOCK;
    cfg.block_timeout_ms = 50;
    cfg.checksum = false;
    bus = make_bus(name, &cfg);
    CHECK_RC(shmbus_subscribe(bus, "#", &sub), SHMBUS_OK);
    published = 0;
    double t0 = 0;
    do {
        t0 = now_ms();
        rc = shmbus_publish(bus, "fill.up", payload, sizeof payload, NULL);
    } while (rc == SHMBUS_OK && ++published < 10000);
    CHECK_RC(rc, SHMBUS_FULL);
    CHECK(now_ms() - t0 >= 45);
    shmbus_sub_close(sub);
    /* With no live subscriber lagging, the policy lets eviction happen. */
    CHECK_RC(shmbus_publish(bus, "fill.up", payload, sizeof payload, NULL), SHMBUS_OK);
    shmbus_close(bus);

    /* Single-producer mode: a second producing thread is refused. */
    name = new_name("single");
    cfg = small_cfg();
    cfg.single_producer = true;
    bus = make_bus(name, &cfg);
    CHECK_RC(shmbus_publish(bus, "one.producer", "1", 1, NULL), SHMBUS_OK);
    struct thread_call t = {.bus = bus};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, publish_from_other_thread, &t) == 0);
    pthread_join(th, NULL);
    CHECK_RC(t.rc_publish, SHMBUS_PRODUCER_CONFLICT);
    CHECK(strstr(t.error, "shmbus_publish: bus is single-producer") == t.error);
    shmbus_close(bus);

    /* producer_limit: the producer table is full. */
    name = new_name("plimit");
    cfg = small_cfg();
    cfg.producer_limit = 1;
    bus = make_bus(name, &cfg);
    CHECK_RC(shmbus_publish(bus, "one.producer", "1", 1, NULL), SHMBUS_OK);
    memset(&t, 0, sizeof t);
    t.bus = bus;
    CHECK(pthread_create(&th, NULL, publish_from_other_thread, &t) == 0);
    pthread_join(th, NULL);
    CHECK_RC(t.rc_publish, SHMBUS_LIMIT);
    CHECK(strstr(t.error, "producer limit reached") != NULL);
    shmbus_close(bus);
}

int main(void) {
    atexit(remove_all);
    signal(SIGSEGV, on_signal);
    signal(SIGABRT, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    struct {
        const char *name;
        void (*run)(void);
    } tests[] = {
        {"static functions", test_static_functions},
        {"create, open, remove", test_create_open_remove},
        {"incompatible segments and permissions", test_incompatible_and_permissions},
        {"publish and recv", test_publish_and_recv},
        {"publish many", test_publish_many},
        {"recv many", test_recv_many},
        {"claims", test_claims},
        {"subscribe variants", test_subscribe_variants},
        {"consumer groups", test_groups},
        {"eviction and counters", test_eviction_and_counters},
        {"overflow policies and producer limits", test_overflow_policies},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        int before = failures;
        tests[i].run();
        printf("%-45s %s\n", tests[i].name, failures == before ? "ok" : "FAILED");
    }
    printf("test_ffi: %d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
