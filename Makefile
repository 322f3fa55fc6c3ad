# np — build, test, bench. Variants: opt (default, into build/), asan, tsan, ucontext,
# aarch64 (cross, run under qemu-user), each into build/<variant>/ except opt.
VARIANT ?= opt
CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
CTX ?= asm

ifeq ($(VARIANT),opt)
B := build
else
B := build/$(VARIANT)
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
BASE := -std=c11 -D_GNU_SOURCE -Iinclude -g -pthread -fno-omit-frame-pointer $(WARN)
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
ifeq ($(VARIANT),aarch64)
CC := aarch64-linux-gnu-gcc
endif
CFLAGS_ALL := $(BASE) $(OPT) $(SAN) $(EXTRA_CFLAGS)
LDFLAGS_ALL := -pthread -rdynamic $(SAN)

ARCH := $(shell $(CC) -dumpmachine | cut -d- -f1)
CTX_SRC := src/ctx/ctx_ucontext.c
ifeq ($(CTX),asm)
CTX_SRC := src/ctx/ctx_asm.c src/ctx/switch_$(ARCH).S
else
CFLAGS_ALL += -DNP_CTX_UCONTEXT
endif

LIB_SRC := $(CTX_SRC) $(wildcard src/os/*.c src/mem/*.c src/time/*.c src/sched/*.c src/sync/*.c src/netpoll/*.c src/fd/*.c src/net/*.c src/debug/*.c)
LIB_OBJ := $(patsubst %,$(B)/obj/%.o,$(LIB_SRC))
TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))
BENCH := $(B)/bin/np-bench-runtime
EXAMPLES := $(B)/bin/np-echo $(B)/bin/np-telnet $(B)/bin/np-chat $(B)/bin/np-netlog
HDRS := $(wildcard include/*.h src/*/*.h tests/*.h)

.PHONY: all lib tests bench-bin examples run test bench mutate clean
all: lib tests bench-bin examples
examples: $(EXAMPLES)
lib: $(B)/libnp.a
tests: $(TESTS)
bench-bin: $(BENCH)

$(B)/obj/%.c.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS_ALL) -c $< -o $@
$(B)/obj/%.S.o: %.S
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS_ALL) -c $< -o $@
$(B)/libnp.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^
$(B)/tests/%: tests/%.c $(B)/libnp.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Isrc $< $(B)/libnp.a -o $@ $(LDFLAGS_ALL)
$(B)/bin/np-%: examples/%.c $(B)/libnp.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(B)/libnp.a -o $@ $(LDFLAGS_ALL)
$(B)/bin/np-bench-%: bench/%.c $(B)/libnp.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $< $(B)/libnp.a -o $@ $(LDFLAGS_ALL)

# The main demo: the echo server on port 7000.
run: lib examples
	@echo "np-echo listening on port 7000 (NP_PROCS=$${NP_PROCS:-all CPUs})."
	@echo "Try it from another terminal:  ./build/bin/np-telnet 127.0.0.1 7000"
	@echo "                          or:  nc 127.0.0.1 7000"
	./build/bin/np-echo 7000

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
