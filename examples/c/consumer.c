/*
 * consumer - subscribes to bus NAME with a topic pattern and prints frames.
 *
 *   consumer NAME PATTERN [COUNT] [TIMEOUT_MS]
 *
 * Opens bus NAME (creating it with the default configuration if needed),
 * subscribes from the newest frame with the MQTT-style PATTERN (for example
 * "events.process.#") and prints one line per frame:
 *
 *   SEQ TOPIC PAYLOAD
 *
 * It exits 0 after COUNT frames (0 or absent: no limit) or when nothing
 * arrives for TIMEOUT_MS milliseconds (absent or negative: wait forever);
 * 1 on a bus error, 2 on bad usage. A summary goes to stderr.
 *
 * Build: cc -std=c11 consumer.c $(pkg-config --cflags --libs shmbus)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "shmbus.h"

static int parse_ll(const char *s, long long *out) {
    char *end = NULL;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

int main(int argc, char **argv) {
    long long count = 0, timeout_ms = -1;
    if (argc < 3 || argc > 5 || (argc > 3 && (!parse_ll(argv[3], &count) || count < 0)) ||
        (argc > 4 && !parse_ll(argv[4], &timeout_ms))) {
        fprintf(stderr, "usage: consumer NAME PATTERN [COUNT] [TIMEOUT_MS]\n");
        return 2;
    }

    shmbus_config_t cfg = shmbus_config_default();
    shmbus_bus_t *bus = NULL;
    if (shmbus_open_or_create(argv[1], &cfg, &bus) != SHMBUS_OK) {
        fprintf(stderr, "consumer: %s\n", shmbus_last_error());
        return 1;
    }
    shmbus_sub_t *sub = NULL;
    if (shmbus_subscribe(bus, argv[2], &sub) != SHMBUS_OK) {
        fprintf(stderr, "consumer: %s\n", shmbus_last_error());
        shmbus_close(bus);
        return 1;
    }

    int status = 0;
    long long received = 0;
    while (count == 0 || received < count) {
        shmbus_frame_t f;
        shmbus_status_t rc = shmbus_recv(sub, timeout_ms, &f);
        if (rc == SHMBUS_TIMEOUT) {
            break;
        }
        if (rc != SHMBUS_OK) {
            fprintf(stderr, "consumer: %s\n", shmbus_last_error());
            status = 1;
            break;
        }
        /* f.topic is NUL-terminated; the payload is not. Both are valid until the next shmbus_recv. */
        printf("%" PRIu64 " %s %.*s\n", f.seq, f.topic, (int)f.payload_len, (const char *)f.payload);
        fflush(stdout);
        received++;
    }
    fprintf(stderr, "consumer: %lld frames, %" PRIu64 " missed\n", received, shmbus_sub_missed(sub));
    shmbus_sub_close(sub);
    shmbus_close(bus);
    return status;
}
