# np — build, test, bench, install. Variants: opt (default, into build/), clang, asan,
# tsan, ucontext, aarch64 (cross, run under qemu-user), shared (opt, with the tests and
# examples linked against libnp.so), each into build/<variant>/ except opt.
VARIANT ?= opt
CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
CXX ?= c++
ifeq ($(origin CXX),default)
CXX := c++
endif
CTX ?= asm

# The version is np.h's (NP_VERSION_MAJOR/MINOR/PATCH); the soname carries the major.
vpart = $(shell sed -n 's/^\#define NP_VERSION_$(1) \([0-9]*\).*/\1/p' include/np.h)
VERSION := $(call vpart,MAJOR).$(call vpart,MINOR).$(call vpart,PATCH)
SONAME := libnp.so.$(call vpart,MAJOR)

# Where make install puts things (DESTDIR is prepended to each, as packagers expect).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

ifeq ($(VARIANT),opt)
B := build
else
B := build/$(VARIANT)
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
# llhttp (Debian node-llhttp): C sources and header, compiled into libnp (src/http).
LLHTTP_DIR := /usr/share/llhttp
LLHTTP_INC := /usr/share/include/llhttp
BASE := -std=c11 -D_GNU_SOURCE -Iinclude -I$(LLHTTP_INC) -g -pthread -fno-omit-frame-pointer $(WARN)
OPT := -O2
SAN :=
ifeq ($(VARIANT),asan)
OPT := -O1 -fno-omit-frame-pointer
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif
ifeq ($(VARIANT),tsan)
OPT := -O1
SAN := -fsanitize=thread
endif
ifeq ($(VARIANT),ucontext)
CTX := ucontext
endif
OBJCOPY := objcopy
ifeq ($(VARIANT),aarch64)
CC := aarch64-linux-gnu-gcc
CXX := aarch64-linux-gnu-g++
OBJCOPY := aarch64-linux-gnu-objcopy
endif
ifeq ($(VARIANT),clang)
CXX := clang++
endif
CFLAGS_ALL := $(BASE) $(OPT) $(SAN) $(EXTRA_CFLAGS)
# notrace: the runtime without its trace points (the tracing benchmark's baseline)
ifeq ($(VARIANT),notrace)
CFLAGS_ALL += -DNP_NO_TRACE
endif
# TLS (src/tls) is OpenSSL 3's libssl and libcrypto (Debian libssl-dev).
SSL_LIBS := -lssl -lcrypto
LDFLAGS_ALL := -pthread -rdynamic $(SAN) $(SSL_LIBS)
CXXFLAGS_ALL := -std=c++11 -Iinclude -g -pthread $(WARN) -pedantic $(OPT) $(SAN)
# The shared library's objects: position-independent, the initial-exec TLS model (valid in
# a library loaded at start-up), and everything hidden but what np.h declares.
PIC_FLAGS := -fPIC -fvisibility=hidden -fno-semantic-interposition -DNP_SHARED_OBJECT
SO_LDFLAGS := -shared -Wl,-soname,$(SONAME) -Wl,-z,defs -Wl,-Bsymbolic -Wl,--as-needed

ARCH := $(shell $(CC) -dumpmachine | cut -d- -f1)
CTX_SRC := src/ctx/ctx_ucontext.c
ifeq ($(CTX),asm)
CTX_SRC := src/ctx/ctx_asm.c src/ctx/switch_$(ARCH).S
else
CFLAGS_ALL += -DNP_CTX_UCONTEXT
endif

LIB_SRC := $(CTX_SRC) $(wildcard src/os/*.c src/mem/*.c src/time/*.c src/sched/*.c src/sync/*.c src/netpoll/*.c src/fd/*.c src/net/*.c src/debug/*.c src/tls/*.c src/trace/*.c)
# The HTTP layer (src/http) with llhttp inside it: one relocatable object whose llhttp
# names are made local, so that a program may link another llhttp beside libnp.
HTTP_SRC := $(wildcard src/http/*.c)
LLHTTP_SRC := $(LLHTTP_DIR)/api.c $(LLHTTP_DIR)/http.c $(LLHTTP_DIR)/llhttp.c
LLHTTP_CFLAGS := $(OPT) $(SAN) -g -fno-omit-frame-pointer -I$(LLHTTP_INC) -w
LIB_OBJ := $(patsubst %,$(B)/obj/%.o,$(LIB_SRC)) $(B)/obj/np_http.o
PIC_OBJ := $(patsubst %,$(B)/pic/%.o,$(LIB_SRC)) $(B)/pic/np_http.o
SO := $(B)/libnp.so.$(VERSION)
# libnp-hook: libc's blocking calls interposed (src/hook), a library of its own that only
# the programs that want it link (before libnp; the archive whole, so that every hook is
# in the program for the shared libraries it loads).
HOOK_SRC := $(wildcard src/hook/*.c)
HOOK_OBJ := $(patsubst %,$(B)/obj/%.o,$(HOOK_SRC))
HOOK_PIC := $(patsubst %,$(B)/pic/%.o,$(HOOK_SRC))
HOOK_SONAME := libnp-hook.so.$(call vpart,MAJOR)
HOOK_SO := $(B)/libnp-hook.so.$(VERSION)
TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c)) $(B)/tests/test_net_hooked \
	$(patsubst tests/%.cpp,$(B)/tests/%,$(wildcard tests/test_*.cpp))
BENCH := $(B)/bin/np-bench-runtime
EXAMPLE_NAMES := np-echo np-telnet np-chat np-netlog np-httpd
EXAMPLES := $(patsubst %,$(B)/bin/%,$(EXAMPLE_NAMES))
HDRS := $(wildcard include/*.h src/*/*.h tests/*.h)

# What tests and examples link. Static: libnp.a. Shared (VARIANT=shared): libnp.so, found
# at run time through the rpath; the white-box tests, which call internal functions that
# the shared library hides, link the archive of its own position-independent objects.
LINK_LIB := $(B)/libnp.a
LINK_DEP := $(B)/libnp.a
WHITEBOX_LIB := $(B)/libnp.a
ifeq ($(VARIANT),shared)
LINK_LIB := -L$(B) -l:$(SONAME) -Wl,-rpath,'$$ORIGIN/..'
LINK_DEP := $(B)/$(SONAME)
WHITEBOX_LIB := $(B)/libnp-pic.a
endif
WHITEBOX := $(patsubst %,$(B)/tests/%,test_netpoll test_timer)
HOOK_LINK := -Wl,--whole-archive $(B)/libnp-hook.a -Wl,--no-whole-archive $(LINK_LIB) -ldl
HOOK_DEP := $(B)/libnp-hook.a
ifeq ($(VARIANT),shared)
HOOK_LINK := -L$(B) -Wl,--push-state,--no-as-needed -l:$(HOOK_SONAME) -Wl,--pop-state $(LINK_LIB) -ldl
HOOK_DEP := $(B)/$(HOOK_SONAME)
endif
HOOKED := $(patsubst %,$(B)/tests/%,test_hook test_hook_io)
# Unmodified client libraries from Debian through libnp-hook, against the real servers
# that tests/servers.sh starts (make srv builds them; not part of all).
SRV := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/srv_*.c))
SRV_LIBS_srv_redis := -lhiredis
SRV_LIBS_srv_pq := -lpq
SRV_LIBS_srv_curl := -lcurl

.PHONY: srv all lib shared hook tests bench-bin examples run test bench mutate clean install uninstall
all: lib shared hook tests bench-bin examples
examples: $(EXAMPLES)
lib: $(B)/libnp.a
shared: $(B)/libnp.so
hook: $(B)/libnp-hook.a $(B)/libnp-hook.so
tests: $(TESTS)
bench-bin: $(BENCH) $(B)/bin/np-echo-shared

# Objects depend on the Makefile too: a change of flags rebuilds them.
$(B)/obj/%.c.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS_ALL) -c $< -o $@
$(B)/obj/%.S.o: %.S Makefile
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS_ALL) -c $< -o $@
$(B)/pic/%.c.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC (pic) $<"; $(CC) $(CFLAGS_ALL) $(PIC_FLAGS) -c $< -o $@
$(B)/pic/%.S.o: %.S Makefile
	@mkdir -p $(dir $@)
	@echo "  CC (pic) $<"; $(CC) $(CFLAGS_ALL) $(PIC_FLAGS) -c $< -o $@
# llhttp comes from Debian's node-llhttp, installed here when missing.
$(LLHTTP_SRC) $(LLHTTP_INC)/llhttp.h &:
	@echo "  installing node-llhttp (llhttp's C sources)"
	@DEBIAN_FRONTEND=noninteractive apt-get install -y -qq node-llhttp >/dev/null || \
		{ echo "node-llhttp is needed: apt-get install node-llhttp" >&2; exit 1; }
$(B)/obj/llhttp/%.c.o: $(LLHTTP_DIR)/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(LLHTTP_CFLAGS) -c $< -o $@
$(B)/pic/llhttp/%.c.o: $(LLHTTP_DIR)/%.c Makefile
	@mkdir -p $(dir $@)
	@echo "  CC (pic) $<"; $(CC) $(LLHTTP_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@
$(B)/obj/src/http/%.c.o $(B)/pic/src/http/%.c.o: $(LLHTTP_INC)/llhttp.h
HTTP_LD = @echo "  LD -r $@"; $(CC) -r -nostdlib $^ -o $@.tmp && \
	$(OBJCOPY) -w --localize-symbol='llhttp*' $@.tmp $@ && rm -f $@.tmp
$(B)/obj/np_http.o: $(patsubst %,$(B)/obj/%.o,$(HTTP_SRC)) $(patsubst $(LLHTTP_DIR)/%,$(B)/obj/llhttp/%.o,$(LLHTTP_SRC))
	$(HTTP_LD)
$(B)/pic/np_http.o: $(patsubst %,$(B)/pic/%.o,$(HTTP_SRC)) $(patsubst $(LLHTTP_DIR)/%,$(B)/pic/llhttp/%.o,$(LLHTTP_SRC))
	$(HTTP_LD)
$(B)/libnp.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^
$(B)/libnp-pic.a: $(PIC_OBJ)
	@rm -f $@
	@ar rcs $@ $^
$(SO): $(PIC_OBJ)
	@echo "  LD $@"; $(CC) $(SO_LDFLAGS) $^ -o $@ -pthread $(SAN) $(SSL_LIBS)
$(B)/$(SONAME): $(SO)
	@ln -sf $(notdir $<) $@
$(B)/libnp.so: $(B)/$(SONAME)
	@ln -sf $(SONAME) $@
$(B)/tests/%: tests/%.c $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc $< $(LINK_LIB) -o $@ $(LDFLAGS_ALL)
$(HOOKED): $(B)/tests/%: tests/%.c $(HOOK_DEP) $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc $< $(HOOK_LINK) -o $@ $(LDFLAGS_ALL)
# Built as Debian builds its libraries (with gcc: clang's fortify calls no _chk entry
# point here); it must call the _chk entry points it tests.
FORTIFY_CC := $(if $(filter clang,$(CC)),gcc,$(CC))
$(B)/tests/test_hook_fortify: tests/test_hook_fortify.c $(HOOK_DEP) $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(FORTIFY_CC) $(CFLAGS_ALL) -O2 -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 -Isrc -c $< -o $@.o
	@for f in __read_chk __recv_chk __recvfrom_chk __poll_chk; do \
		nm -u $@.o | grep -q " $$f" || { echo "$@.o does not call $$f"; exit 1; }; done
	$(CC) $(CFLAGS_ALL) $@.o $(HOOK_LINK) -o $@ $(LDFLAGS_ALL)
# np's own network calls with libnp-hook linked: np's fds are its own, the hooks pass
# them through (in the sanitizer builds np's fd layer calls libc's read and write).
$(B)/tests/test_net_hooked: tests/test_net.c $(HOOK_DEP) $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc $< $(HOOK_LINK) -o $@ $(LDFLAGS_ALL)
# The Redis load of make bench: hiredis in coroutines (libnp-hook) or threads.
$(B)/bin/np-redisload: bench/redisload.c $(HOOK_DEP) $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(HOOK_LINK) -lhiredis -o $@ $(LDFLAGS_ALL)
srv: $(SRV) $(B)/tests/test_http
$(SRV): $(B)/tests/%: tests/%.c $(HOOK_DEP) $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc -I/usr/include/postgresql $< $(HOOK_LINK) $(SRV_LIBS_$*) -o $@ $(LDFLAGS_ALL)
$(B)/libnp-hook.a: $(HOOK_OBJ)
	@rm -f $@
	@ar rcs $@ $^
$(HOOK_SO): $(HOOK_PIC) $(B)/$(SONAME)
	@echo "  LD $@"; $(CC) $(SO_LDFLAGS:$(SONAME)=$(HOOK_SONAME)) $(HOOK_PIC) -L$(B) -l:$(SONAME) -ldl -o $@ -pthread $(SAN)
$(B)/$(HOOK_SONAME): $(HOOK_SO)
	@ln -sf $(notdir $<) $@
$(B)/libnp-hook.so: $(B)/$(HOOK_SONAME)
	@ln -sf $(HOOK_SONAME) $@
$(WHITEBOX): $(B)/tests/%: tests/%.c $(WHITEBOX_LIB) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc $< $(WHITEBOX_LIB) -o $@ $(LDFLAGS_ALL)
$(B)/tests/%: tests/%.cpp $(LINK_DEP) include/np.h include/np_http.h include/np_tls.h
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) $< $(LINK_LIB) -o $@ $(LDFLAGS_ALL)
$(B)/bin/np-%: examples/%.c $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(LINK_LIB) -o $@ $(LDFLAGS_ALL)
$(B)/bin/np-bench-%: bench/%.c $(LINK_DEP) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(LINK_LIB) -o $@ $(LDFLAGS_ALL)
# np-echo linked against libnp.so (make bench compares it with the static one).
$(B)/bin/np-echo-shared: examples/echo.c $(B)/$(SONAME) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< -L$(B) -l:$(SONAME) -Wl,-rpath,'$$ORIGIN/..' -o $@ $(LDFLAGS_ALL)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the header, libnp.a, libnp.so with its
# soname links, np.pc (pkg-config; made from np.pc.in for this PREFIX) and the example programs (linked statically: they run anywhere).
install: lib $(SO) hook $(patsubst %,build/bin/%,$(EXAMPLE_NAMES))
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(BINDIR)
	install -m 644 include/np.h include/np_http.h include/np_tls.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(B)/libnp.a $(DESTDIR)$(LIBDIR)/libnp.a
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libnp.so.$(VERSION)
	ln -sf libnp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libnp.so
	install -m 644 $(B)/libnp-hook.a $(DESTDIR)$(LIBDIR)/libnp-hook.a
	install -m 755 $(HOOK_SO) $(DESTDIR)$(LIBDIR)/libnp-hook.so.$(VERSION)
	ln -sf libnp-hook.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(HOOK_SONAME)
	ln -sf $(HOOK_SONAME) $(DESTDIR)$(LIBDIR)/libnp-hook.so
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' np.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/np.pc
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' np-hook.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/np-hook.pc
	install -m 755 $(patsubst %,build/bin/%,$(EXAMPLE_NAMES)) $(DESTDIR)$(BINDIR)/
	install -m 755 tools/np-trace $(DESTDIR)$(BINDIR)/np-trace
	@if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache ]; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/np.h $(DESTDIR)$(INCLUDEDIR)/np_http.h $(DESTDIR)$(INCLUDEDIR)/np_tls.h $(DESTDIR)$(LIBDIR)/libnp.a \
		$(DESTDIR)$(LIBDIR)/libnp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/libnp.so $(DESTDIR)$(PKGCONFIGDIR)/np.pc \
		$(DESTDIR)$(LIBDIR)/libnp-hook.a $(DESTDIR)$(LIBDIR)/libnp-hook.so.$(VERSION) \
		$(DESTDIR)$(LIBDIR)/$(HOOK_SONAME) $(DESTDIR)$(LIBDIR)/libnp-hook.so \
		$(DESTDIR)$(PKGCONFIGDIR)/np-hook.pc \
		$(patsubst %,$(DESTDIR)$(BINDIR)/%,$(EXAMPLE_NAMES)) $(DESTDIR)$(BINDIR)/np-trace
	@if [ -z "$(DESTDIR)" ] && [ -w /etc/ld.so.cache ]; then ldconfig; fi

# The main demo: np-httpd on port 8080, its runtime live at /debug/np/ (np-echo stays:
# ./build/bin/np-echo 7000).
run: lib examples
	@echo "np-httpd on 127.0.0.1:8080 (NP_PROCS=$${NP_PROCS:-all CPUs}); Ctrl-C stops it."
	@echo "Open http://127.0.0.1:8080/debug/np/ in a browser to see the runtime live."
	./build/bin/np-httpd -d . 8080

test:
	bash tests/run.sh

bench: all
	bash bench/run.sh

# Plant each bug of tests/mutants/ in a scratch copy and run the tests that must catch
# it: prints killed or SURVIVED per bug (tests/mutate.sh).
mutate:
	bash tests/mutate.sh

clean:
	rm -rf build
