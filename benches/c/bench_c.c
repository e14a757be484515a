/*
 * bench_c - the C path of the shmbus benchmarks (issue #3). Built by
 * `make bench-c` (mk/bench.mk) against the release libshmbus; see BENCHMARKS.md.
 *
 *   bench_c inproc FRAMES ROUNDS
 *       One run in this process, printed as one line
 *           publish_ns=X round_ns=Y recv_ns=Z
 *       publish: FRAMES x shmbus_publish of a 64-byte frame on a 16 MiB bus
 *                with no subscriber (after a warm-up of FRAMES/20);
 *       round:   ROUNDS x (shmbus_publish of one 64-byte frame, then
 *                shmbus_recv(sub, 0, &frame) of it) on a second bus with one
 *                busy-polling subscriber (after a warm-up of ROUNDS/20);
 *       recv:    ROUNDS x shmbus_recv(sub, 0, &frame) alone, timed per batch
 *                of 256 frames published just before (not timed).
 *       The Rust twin is `rust-path --inproc` (benches/src/bin/rust-path.rs):
 *       same buses, same loops, same counts; `rust-path --c-bin bench_c`
 *       runs both, interleaved, and prints the difference.
 *
 *   SHMBUS_BENCH_CHILD="role=producer bus=NAME n=N payload=P deadline_ms=D" bench_c
 *   SHMBUS_BENCH_CHILD="role=subscriber bus=NAME expected=N payload=P deadline_ms=D" bench_c
 *       A child of the cross-process harness (benches/src/harness/child.rs
 *       protocol): open the bus, print READY, wait for GO on stdin, run, print
 *       one `RESULT key=value ...` line (or `ERROR message`). An optional
 *       `cpu=C` pins the process to CPU C first (throughput-pinned). The harness
 *       runs these as the `shmbus-c` peer of the `throughput` scenario when
 *       SHMBUS_BENCH_C names this program, and checks the counts
 *       (delivered + missed + abandoned == published, bus stats).
 *
 * Buses are named bench-<pid>-c-<tag> (the harness removes those of dead
 * processes) and removed on every exit path, SIGINT/SIGTERM included.
 */
/* sched_setaffinity and CPU_SET, for a child spec's `cpu` key. */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shmbus.h"

#define TOPIC "bench.data"
#define PAYLOAD 64
#define BUS_MEMORY (16u << 20)

/* The bus this process created and must remove: its name and its
 * /dev/shm object (for the signal handler, which may only shm_unlink). */
static char g_bus[SHMBUS_MAX_NAME_LEN + 1];
static char g_shm[SHMBUS_MAX_NAME_LEN + 16];

static void on_signal(int sig) {
    if (g_shm[0] != '\0') {
        shm_unlink(g_shm);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void forget_bus(void) {
    if (g_bus[0] != '\0') {
        shmbus_remove(g_bus);
        g_bus[0] = '\0';
        g_shm[0] = '\0';
    }
}

static void die(const char *what, shmbus_status_t st) {
    fprintf(stderr, "bench_c: %s: %s (%s)\n", what, shmbus_status_str((int)st), shmbus_last_error());
    forget_bus();
    exit(1);
}

static uint64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* CPU time of the calling thread (the harness's producer cost per frame). */
static uint64_t thread_cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

static shmbus_bus_t *create_bus(const char *tag) {
    snprintf(g_bus, sizeof g_bus, "bench-%ld-c-%s", (long)getpid(), tag);
    snprintf(g_shm, sizeof g_shm, "/shmbus.%s", g_bus);
    shmbus_remove(g_bus); /* a leftover of an earlier process with our pid */
    shmbus_config_t cfg = shmbus_config_default();
    cfg.memory_limit = BUS_MEMORY;
    shmbus_bus_t *bus = NULL;
    shmbus_status_t st = shmbus_create(g_bus, &cfg, &bus);
    if (st != SHMBUS_OK) {
        g_bus[0] = '\0';
        g_shm[0] = '\0';
        die("shmbus_create", st);
    }
    return bus;
}

/* ------------------------------------------------------------------ inproc */

static double publish_ns(uint64_t frames) {
    shmbus_bus_t *bus = create_bus("pub");
    uint8_t payload[PAYLOAD];
    memset(payload, 7, sizeof payload);
    for (uint64_t i = 0; i < frames / 20; i++) {
        shmbus_status_t st = shmbus_publish(bus, TOPIC, payload, sizeof payload, NULL);
        if (st != SHMBUS_OK) die("shmbus_publish (warm-up)", st);
    }
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < frames; i++) {
        shmbus_status_t st = shmbus_publish(bus, TOPIC, payload, sizeof payload, NULL);
        if (st != SHMBUS_OK) die("shmbus_publish", st);
    }
    uint64_t dt = mono_ns() - t0;
    shmbus_close(bus);
    forget_bus();
    return (double)dt / (double)frames;
}

/* A subscriber to every topic, from the newest frame on, busy-polling (the
 * reader of round_ns and recv_ns; the Rust twin's TempBus::spin_subscriber). */
static shmbus_sub_t *spin_subscriber(shmbus_bus_t *bus) {
    shmbus_subscribe_options_t opts = shmbus_subscribe_options_default();
    opts.start = SHMBUS_START_NEWEST;
    opts.wait = SHMBUS_WAIT_SPIN;
    shmbus_sub_t *sub = NULL;
    shmbus_status_t st = shmbus_subscribe_with(bus, "#", &opts, &sub);
    if (st != SHMBUS_OK) die("shmbus_subscribe_with", st);
    return sub;
}

/* Receive the frame just published (shmbus_recv(sub, 0, ...)), inlined into the
 * timed loops as a C consumer would write it, check its
 * length and return its first payload byte; `what` and `i` name it in errors. */
static inline __attribute__((always_inline)) uint8_t recv_one(shmbus_sub_t *sub, const char *what, uint64_t i) {
    shmbus_frame_t f;
    shmbus_status_t st = shmbus_recv(sub, 0, &f);
    if (st != SHMBUS_OK) die("shmbus_recv", st);
    if (f.payload_len != PAYLOAD) {
        fprintf(stderr, "bench_c: %s %" PRIu64 ": payload of %zu bytes\n", what, i, f.payload_len);
        forget_bus();
        exit(1);
    }
    return f.payload[0];
}

/* Check that nothing was missed and every payload byte summed to `sum` was
 * 7 (`frames` of them), then close the subscriber and remove the bus. */
static void finish(shmbus_bus_t *bus, shmbus_sub_t *sub, const char *what, uint64_t sum, uint64_t frames) {
    if (shmbus_sub_missed(sub) != 0 || sum != 7 * frames) {
        fprintf(stderr, "bench_c: %s: missed %" PRIu64 ", bad payloads\n", what, shmbus_sub_missed(sub));
        forget_bus();
        exit(1);
    }
    shmbus_sub_close(sub);
    shmbus_close(bus);
    forget_bus();
}

static double round_ns(uint64_t rounds) {
    shmbus_bus_t *bus = create_bus("round");
    shmbus_sub_t *sub = spin_subscriber(bus);
    shmbus_status_t st;
    uint8_t payload[PAYLOAD];
    memset(payload, 7, sizeof payload);
    uint64_t warm = rounds / 20, t0 = 0;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < warm + rounds; i++) {
        if (i == warm) t0 = mono_ns();
        st = shmbus_publish(bus, TOPIC, payload, sizeof payload, NULL);
        if (st != SHMBUS_OK) die("shmbus_publish", st);
        sum += recv_one(sub, "round", i);
    }
    uint64_t dt = mono_ns() - t0;
    finish(bus, sub, "round", sum, warm + rounds);
    return (double)dt / (double)rounds;
}

/* Frames per published-then-received batch of recv_ns: 45 KB, inside L2. */
#define RECV_BATCH 256

/* The receive path alone: ROUNDS x shmbus_recv(sub, 0, &frame), timed per
 * batch of RECV_BATCH frames published just before (not timed). */
static double recv_ns(uint64_t rounds) {
    shmbus_bus_t *bus = create_bus("recv");
    shmbus_sub_t *sub = spin_subscriber(bus);
    shmbus_status_t st;
    uint8_t payload[PAYLOAD];
    memset(payload, 7, sizeof payload);
    uint64_t batches = (rounds + RECV_BATCH - 1) / RECV_BATCH, warm = batches / 20;
    uint64_t timed = 0, sum = 0;
    for (uint64_t b = 0; b < warm + batches; b++) {
        for (int i = 0; i < RECV_BATCH; i++) {
            st = shmbus_publish(bus, TOPIC, payload, sizeof payload, NULL);
            if (st != SHMBUS_OK) die("shmbus_publish", st);
        }
        uint64_t t0 = mono_ns();
        for (int i = 0; i < RECV_BATCH; i++) {
            sum += recv_one(sub, "batch", b);
        }
        if (b >= warm) timed += mono_ns() - t0;
    }
    finish(bus, sub, "recv", sum, (warm + batches) * RECV_BATCH);
    return (double)timed / (double)(batches * RECV_BATCH);
}

/* ------------------------------------------------------- harness children */

/* Value of KEY in the spec "k=v k=v ...", copied to OUT; 0 if absent. */
static int spec_get(const char *spec, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key);
    const char *p = spec;
    while (*p != '\0') {
        while (*p == ' ') p++;
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= cap) return 0;
            memcpy(out, p + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        p += len;
    }
    return 0;
}

static int spec_num(const char *spec, const char *key, uint64_t *out) {
    char buf[32];
    if (!spec_get(spec, key, buf, sizeof buf)) return 0;
    char *end = NULL;
    *out = strtoull(buf, &end, 10);
    return end != buf && *end == '\0';
}

static int child_error(const char *fmt, const char *a, const char *b) {
    printf("ERROR ");
    printf(fmt, a, b);
    printf("\n");
    fflush(stdout);
    return 1;
}

/* Print READY, wait for GO; 0 if the parent went away. */
static int ready_then_wait_go(void) {
    printf("READY\n");
    fflush(stdout);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) return 0;
    return strncmp(line, "GO", 2) == 0;
}

static int child_main(const char *spec) {
    char role[32], name[SHMBUS_MAX_NAME_LEN + 1];
    uint64_t size = 0, deadline_ms = 0;
    if (!spec_get(spec, "role", role, sizeof role) || !spec_get(spec, "bus", name, sizeof name) ||
        !spec_num(spec, "payload", &size) || !spec_num(spec, "deadline_ms", &deadline_ms) || size > 65536)
        return child_error("bad spec %s%s", spec, "");
    char cpu_text[32];
    if (spec_get(spec, "cpu", cpu_text, sizeof cpu_text)) {
        uint64_t cpu = 0;
        if (!spec_num(spec, "cpu", &cpu) || cpu >= CPU_SETSIZE) return child_error("bad spec %s%s", spec, "");
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((int)cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            return child_error("sched_setaffinity(cpu %s): %s", cpu_text, strerror(errno));
    }
    char group[SHMBUS_MAX_GROUP_LEN + 1];
    if (spec_get(spec, "group", group, sizeof group))
        return child_error("consumer groups are not implemented in bench_c%s%s", "", "");
    shmbus_bus_t *bus = NULL;
    shmbus_status_t st = shmbus_open(name, &bus);
    if (st != SHMBUS_OK) return child_error("open %s: %s", name, shmbus_last_error());
    /* The harness pattern (benches/src/harness/util.rs, fill_pattern):
     * producers send it with the stamp in the first 8 bytes, subscribers
     * check every byte after the stamp. */
    static uint8_t payload[65536];
    for (size_t j = 0; j < size; j++) payload[j] = (uint8_t)((j * 31 + 7) ^ (j >> 8));
    if (strcmp(role, "producer") == 0) {
        uint64_t n = 0;
        if (!spec_num(spec, "n", &n)) return child_error("bad spec %s%s", spec, "");
        if (!ready_then_wait_go()) return 0;
        uint64_t t0 = mono_ns(), cpu0 = thread_cpu_ns();
        for (uint64_t i = 0; i < n; i++) {
            /* the harness stamp: frame number, little-endian, in the first 8 bytes */
            memcpy(payload, &i, size < 8 ? size : 8);
            st = shmbus_publish(bus, TOPIC, payload, size, NULL);
            if (st != SHMBUS_OK) return child_error("publish: %s%s", shmbus_last_error(), "");
        }
        uint64_t t1 = mono_ns(), cpu = thread_cpu_ns() - cpu0;
        printf("RESULT t0=%" PRIu64 " t1=%" PRIu64 " cpu_ns=%" PRIu64 " published=%" PRIu64 "\n", t0, t1, cpu,
               n);
    } else if (strcmp(role, "subscriber") == 0) {
        uint64_t expected = 0;
        if (!spec_num(spec, "expected", &expected)) return child_error("bad spec %s%s", spec, "");
        shmbus_subscribe_options_t opts = shmbus_subscribe_options_default();
        opts.start = SHMBUS_START_NEWEST;
        opts.wait = SHMBUS_WAIT_SPIN;
        shmbus_sub_t *sub = NULL;
        st = shmbus_subscribe_with(bus, "#", &opts, &sub);
        if (st != SHMBUS_OK) return child_error("subscribe: %s%s", shmbus_last_error(), "");
        if (!ready_then_wait_go()) return 0;
        uint64_t delivered = 0, bad = 0;
        /* Frames lost so far (missed + abandoned), as last asked. A loss
         * always shows as a gap in the seqs of the delivered frames (and
         * the producer's last frame is always delivered: nothing newer can
         * evict it), so the counters are asked only after a gap, not with
         * two calls per frame; `lost` is exact whenever the loop tests it. */
        uint64_t lost = 0, next_seq = 0;
        int first = 1;
        /* Like the Rust subscriber: a waiting receive (busy-polling, the
         * SHMBUS_WAIT_SPIN strategy set above) until every published frame
         * is delivered, missed or abandoned. The timeout is the whole run's
         * budget: it only ends a run that lost frames silently. */
        while (delivered + lost < expected) {
            shmbus_frame_t f;
            st = shmbus_recv(sub, (int64_t)deadline_ms, &f);
            if (st == SHMBUS_OK) {
                delivered++;
                bad += f.payload_len != size ||
                       (size > 8 && memcmp((const uint8_t *)f.payload + 8, payload + 8, size - 8) != 0);
                if (first || f.seq != next_seq) {
                    lost = shmbus_sub_missed(sub) + shmbus_sub_abandoned(sub);
                    first = 0;
                }
                next_seq = f.seq + 1;
                continue;
            }
            if (st != SHMBUS_TIMEOUT) return child_error("recv: %s%s", shmbus_last_error(), "");
            printf("ERROR delivered %" PRIu64 " + missed %" PRIu64 " + abandoned %" PRIu64
                   " < published %" PRIu64 " at the deadline (silent loss?)\n",
                   delivered, shmbus_sub_missed(sub), shmbus_sub_abandoned(sub), expected);
            fflush(stdout);
            return 1;
        }
        uint64_t t_end = mono_ns();
        if (bad > 0) return child_error("frames with a wrong payload (length or bytes)%s%s", "", "");
        printf("RESULT t_end=%" PRIu64 " delivered=%" PRIu64 " missed=%" PRIu64 " abandoned=%" PRIu64 "\n", t_end,
               delivered, shmbus_sub_missed(sub), shmbus_sub_abandoned(sub));
        shmbus_sub_close(sub);
    } else {
        return child_error("unknown role %s%s", role, "");
    }
    fflush(stdout);
    shmbus_close(bus);
    return 0;
}

/* -------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    const char *spec = getenv("SHMBUS_BENCH_CHILD");
    if (spec != NULL) return child_main(spec);
    if (argc == 4 && strcmp(argv[1], "inproc") == 0) {
        uint64_t frames = strtoull(argv[2], NULL, 10), rounds = strtoull(argv[3], NULL, 10);
        if (frames == 0 || rounds == 0) {
            fprintf(stderr, "bench_c: FRAMES and ROUNDS must be > 0\n");
            return 2;
        }
        double p = publish_ns(frames);
        double r = round_ns(rounds);
        double c = recv_ns(rounds);
        printf("publish_ns=%.2f round_ns=%.2f recv_ns=%.2f\n", p, r, c);
        return 0;
    }
    fprintf(stderr, "usage: bench_c inproc FRAMES ROUNDS   (or as a harness child: SHMBUS_BENCH_CHILD=...)\n");
    return 2;
}
