# procs: see README.md. `make` builds every command into bin/.
export GOTOOLCHAIN := go1.26.10
export CGO_ENABLED := 0

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X procs/pkg/cli.Version=$(VERSION) -X procs/pkg/dump.Version=$(VERSION)
PREFIX  ?= /usr/local
DESTDIR ?=

CMDS := $(notdir $(wildcard cmd/*))
BINS := $(addprefix bin/,$(CMDS))
MANS := $(wildcard man/*.[158])

.PHONY: all build deps test bench install lint clean FORCE

all: build

build: $(BINS)

# The go tool decides what is stale; FORCE makes make always ask it.
bin/%: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

# What the tests use from Debian: installed as root, else named (and make
# stops).
deps:
	@sh tests/deps.sh

test: deps build
	$(GO) test -count=1 ./...
	mandoc -T lint -W warning $(MANS)

# Not a test: measures dump and restore against the machine's floor.
bench: build
	$(GO) run ./tests/bench -bin bin

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	@set -e; for f in $(MANS); do \
		s=$${f##*.}; \
		echo install -m 644 $$f $(DESTDIR)$(PREFIX)/share/man/man$$s/; \
		install -d $(DESTDIR)$(PREFIX)/share/man/man$$s; \
		install -m 644 $$f $(DESTDIR)$(PREFIX)/share/man/man$$s/; \
	done

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	mandoc -T lint -W warning $(MANS)

clean:
	rm -rf bin
