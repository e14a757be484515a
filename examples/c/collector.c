/*
 * collector - a process collector stand-in: publishes COUNT process-like
 * events to bus NAME.
 *
 *   collector NAME COUNT
 *
 * Opens bus NAME (creating it with the default configuration if needed) and
 * publishes COUNT frames on topic "events.process.lifecycle" with payload
 * {"i": I, "producer": "c", "pid": PID} for I = 0 .. COUNT-1. Exits 0 on
 * success, 1 on a bus error, 2 on bad usage.
 *
 * Build: cc -std=c11 collector.c $(pkg-config --cflags --libs shmbus)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "shmbus.h"

static const char TOPIC[] = "events.process.lifecycle";

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: collector NAME COUNT\n");
        return 2;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long count = strtoull(argv[2], &end, 10);
    if (errno != 0 || end == argv[2] || *end != '\0' || argv[2][0] == '-') {
        fprintf(stderr, "collector: COUNT must be a non-negative number, got %s\n", argv[2]);
        return 2;
    }

    shmbus_config_t cfg = shmbus_config_default();
    shmbus_bus_t *bus = NULL;
    shmbus_status_t rc = shmbus_open_or_create(argv[1], &cfg, &bus);
    if (rc != SHMBUS_OK) {
        fprintf(stderr, "collector: %s\n", shmbus_last_error());
        return 1;
    }

    long pid = (long)getpid();
    char payload[128];
    int status = 0;
    for (unsigned long long i = 0; i < count; i++) {
        int len = snprintf(payload, sizeof payload, "{\"i\": %llu, \"producer\": \"c\", \"pid\": %ld}", i, pid);
        rc = shmbus_publish(bus, TOPIC, payload, (size_t)len, NULL);
        if (rc != SHMBUS_OK) {
            fprintf(stderr, "collector: frame %llu: %s (%s)\n", i, shmbus_status_str(rc), shmbus_last_error());
            status = 1;
            break;
        }
    }
    shmbus_close(bus);
    return status;
}
