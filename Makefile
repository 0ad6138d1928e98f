# drover: build, test and demo. Targets run as root on Debian 12 for the lab.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
BIN     := bin

# What `drover version` and /v1/status report (cmd/drover/version.go).
VERSION    ?= 0.1.0
COMMIT     ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell [ -n "$$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo -dirty)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
# Evaluated once, not at every use.
COMMIT     := $(COMMIT)
BUILD_DATE := $(BUILD_DATE)
LDFLAGS    := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

.PHONY: all build test unit fuzz demo bench bench-fleet deps fmt vet clean version-check

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/drover ./cmd/drover
	$(GO) build -o $(BIN)/drover-lab ./cmd/drover-lab

# Part of `make test`: the binary reports what LDFLAGS set (a renamed
# variable in cmd/drover/version.go would silently leave it unset).
version-check: build
	@$(BIN)/drover version -o json | grep -q '"version": "$(VERSION)"' || { echo "bin/drover does not report version $(VERSION):" >&2; $(BIN)/drover version >&2; exit 1; }
	@$(BIN)/drover version -o json | grep -q '"build_date": "$(BUILD_DATE)"' || { echo "bin/drover does not report build date $(BUILD_DATE):" >&2; $(BIN)/drover version >&2; exit 1; }
	@echo "version-check: $$($(BIN)/drover --version)"

# Installs the Debian packages the lab needs (sshd, HAProxy, iproute2), only
# those that are missing.
deps:
	@scripts/deps.sh

# Every package but the lab and the end-to-end tests (real processes, built
# binaries, the lab's network): these run under the race detector.
RACE_PKGS = $(shell $(GO) list ./... | grep -v -e '/e2e$$' -e '/lab$$')
# How long each fuzz target runs in `make test`; `make fuzz FUZZTIME=10m`
# for a longer run.
FUZZTIME ?= 5s

# The whole suite: the Vagrantfile and its plan (vagrant-validate, below), unit
# tests under the race detector, a short fuzz run, then end-to-end tests in the
# lab (root). The Vagrant fleet booted for real (vagrant-e2e, below) is not in
# it: under software emulation it took 6-21 minutes on a shared 2-core
# machine with the box cached, and 7-10 more to build the box, which would
# take CI past its 20 minutes (docs/vagrant.md, "Why not in make test").
test: deps version-check vagrant-validate
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m $(RACE_PKGS)
	# Tests that hit a data race inside hashicorp/raft itself (raftstore/race_on_test.go).
	$(GO) test -count=1 -run '^TestClusterAddVoterReplaces$$' ./raftstore/
	$(MAKE) fuzz
	$(GO) test -count=1 -timeout 25m ./lab/ ./e2e/

# The fuzz targets: request decoding in the API, the agent's frames, and
# plans (variables included).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./plans/
	$(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME) ./api/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./transport/agent/wire/

# Unit tests only: no root, no lab.
unit:
	$(GO) test -count=1 -short ./...

demo: deps build
	$(BIN)/drover-lab demo --drover $(BIN)/drover

bench: deps build
	bench/run.sh
	bench/failover.sh
	bench/watch.sh
	bench/agent.sh

# drover beside a bash loop and Ansible at 8, 50 and 200 hosts (tens of
# minutes; needs socat, curl and ansible): bench/fleet.sh.
bench-fleet: deps build
	bench/fleet.sh

fmt:
	gofmt -l -w .

clean:
	rm -rf $(BIN)

# ---- Vagrant fleet (docs/vagrant.md) and Debian package (docs/packages.md) ----
.PHONY: vagrant-artifacts vagrant-validate vagrant-e2e deb

# The Vagrant box (debian/bookworm64) is amd64.
VAGRANT_GOARCH ?= amd64
DEB_ARCH       ?= $(shell $(GO) env GOARCH)
NFPM           := github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

# Everything the VMs need, built here into vagrant/build/ (SSH key, drover
# and demo app binaries, release artifacts 1.0.0, 2.0.0 and 3.0.0 (broken), TLS).
vagrant-artifacts: build
	GO="$(GO)" VERSION="$(VERSION)" COMMIT="$(COMMIT)" BUILD_DATE="$(BUILD_DATE)" VAGRANT_GOARCH="$(VAGRANT_GOARCH)" sh vagrant/build-artifacts.sh $(BIN)/drover

# Part of `make test`: the Vagrantfile loads and is valid (without and with
# coordinators; no provider or VM needed), and examples/vagrant.yaml is a
# valid plan against the artifacts vagrant-artifacts makes. The dotfile dir
# goes to vagrant/build/ so that the checkout stays clean; no version check
# against HashiCorp's servers.
VAGRANT_CHECK := VAGRANT_DOTFILE_PATH=$(CURDIR)/vagrant/build/.vagrant VAGRANT_CHECKPOINT_DISABLE=1
vagrant-validate: vagrant-artifacts
	@command -v vagrant >/dev/null 2>&1 || { echo "vagrant is not installed: make deps (or apt-get install vagrant)" >&2; exit 1; }
	$(VAGRANT_CHECK) vagrant validate --ignore-provider
	$(VAGRANT_CHECK) DROVER_COORDINATORS=3 vagrant validate --ignore-provider
	$(BIN)/drover plan validate examples/vagrant.yaml

# The fleet booted for real (vagrant/e2e.sh; docs/vagrant.md): root, Debian
# 12, installs its packages with apt (scripts/deps.sh vagrant), builds or
# reuses the box under /var/cache/drover-vagrant, boots lb, web1 and web2 in
# a network namespace of its own, deploys through them, destroys them. Skips
# without root, except under CI=true.
vagrant-e2e: vagrant-artifacts
	sh vagrant/e2e.sh

# dist/drover_$(VERSION)_$(DEB_ARCH).deb with nfpm, run at a pinned version
# without adding it to go.mod (fetched through the Go module proxy once).
deb:
	rm -rf dist/build
	CGO_ENABLED=0 GOOS=linux GOARCH=$(DEB_ARCH) $(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o dist/build/drover ./cmd/drover
	VERSION="$(VERSION)" DEB_ARCH="$(DEB_ARCH)" $(GO) run $(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/
	@ls -l dist/*.deb
