# drover: build, test and demo. Targets run as root on Debian 12 for the lab.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin

.PHONY: all build test unit demo bench deps fmt vet clean

all: build

build:
	$(GO) build -o $(BIN)/drover ./cmd/drover
	$(GO) build -o $(BIN)/drover-lab ./cmd/drover-lab

# Installs the Debian packages the lab needs (sshd, HAProxy, iproute2), only
# those that are missing.
deps:
	@scripts/deps.sh

# The whole suite: unit tests, then end-to-end tests in the lab (root).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# Unit tests only: no root, no lab.
unit:
	$(GO) test -count=1 -short ./...

demo: deps build
	$(BIN)/drover-lab demo --drover $(BIN)/drover

bench: deps build
	bench/run.sh
	bench/failover.sh

fmt:
	gofmt -l -w .

clean:
	rm -rf $(BIN)
