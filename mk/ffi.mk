# C ABI (issue #3): libshmbus.{so,a}, include/shmbus.h, C examples and tests.
#
#   make c-examples   build/c/{collector,consumer,test_ffi,xlang} against the release libshmbus
#   make test-c       C test program, cross-language tests, valgrind memcheck, install check
#   make header       regenerate include/shmbus.h (ffi/tests/header.rs checks it is current)
#   make install      PREFIX=/usr/local DESTDIR=: header, libshmbus.so, libshmbus.a, shmbus.pc

FFI_CC ?= gcc
FFI_CFLAGS ?= -std=c11 -Wall -Wextra -Werror -O2 -g
FFI_LIBDIR := $(CURDIR)/target/release
FFI_LINK := -L$(FFI_LIBDIR) -lshmbus -Wl,-rpath,$(FFI_LIBDIR)
FFI_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' $(CURDIR)/Cargo.toml | head -n1)
C_BUILD := build/c
C_PROGRAMS := $(C_BUILD)/collector $(C_BUILD)/consumer $(C_BUILD)/test_ffi $(C_BUILD)/xlang
FFI_VALGRIND := $(shell command -v valgrind 2>/dev/null)
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

TEST_TARGETS += test-c

.PHONY: ffi-lib c-examples test-c header install uninstall

ffi-lib:
	$(CARGO) build -p shmbus-ffi --release

c-examples: ffi-lib
	@mkdir -p $(C_BUILD)
	$(FFI_CC) $(FFI_CFLAGS) -Iinclude examples/c/collector.c -o $(C_BUILD)/collector $(FFI_LINK)
	$(FFI_CC) $(FFI_CFLAGS) -Iinclude examples/c/consumer.c -o $(C_BUILD)/consumer $(FFI_LINK)
	$(FFI_CC) $(FFI_CFLAGS) -pthread -Iinclude tests/c/test_ffi.c -o $(C_BUILD)/test_ffi $(FFI_LINK) -lm
	$(FFI_CC) $(FFI_CFLAGS) -Iinclude tests/c/xlang.c -o $(C_BUILD)/xlang $(FFI_LINK)

test-c: c-examples
	$(CARGO) build -p shmbus-ffi --example xlang
	$(CARGO) build -p shmbus --example publish
	$(C_BUILD)/test_ffi
	tests/c/cross.sh $(C_BUILD) target/debug/examples/xlang target/debug/examples/publish
ifneq ($(FFI_VALGRIND),)
	tests/c/memcheck.sh $(C_BUILD) $(FFI_VALGRIND)
else
	@echo "test-c: valgrind not installed, memcheck skipped"
endif
	MAKE="$(MAKE)" FFI_CC="$(FFI_CC)" tests/c/install.sh $(C_BUILD)

header:
	$(CARGO) run -p shmbus-ffi --example gen_header

install: ffi-lib
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/shmbus.h $(DESTDIR)$(INCLUDEDIR)/shmbus.h
	install -m 755 $(FFI_LIBDIR)/libshmbus.so $(DESTDIR)$(LIBDIR)/libshmbus.so
	install -m 644 $(FFI_LIBDIR)/libshmbus.a $(DESTDIR)$(LIBDIR)/libshmbus.a
	printf '%s\n' \
	  'prefix=$(PREFIX)' \
	  'exec_prefix=$${prefix}' \
	  'libdir=$(LIBDIR)' \
	  'includedir=$(INCLUDEDIR)' \
	  '' \
	  'Name: shmbus' \
	  'Description: Lock-free shared-memory event bus (C API)' \
	  'Version: $(FFI_VERSION)' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -lshmbus' \
	  'Libs.private: -lpthread -ldl -lm -lrt -lgcc_s' \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/shmbus.h $(DESTDIR)$(LIBDIR)/libshmbus.so $(DESTDIR)$(LIBDIR)/libshmbus.a \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/shmbus.pc
