# ringsession: every task, local or CI, is a target here. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := all

VENV ?= .venv
PY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(HOME)/.cargo/bin:$(PATH)
NOSTD_TARGET := thumbv7em-none-eabihf

.PHONY: help ## list the targets
help:
	@grep -E '^\.PHONY: [a-z-]+ ## ' $(MAKEFILE_LIST) | sed -E 's/^\.PHONY: ([a-z-]+) ## (.*)/  \1\t\2/' | expand -t 16

.PHONY: all ## format check, lint and test everything
all: lint test

# ---- setup ---------------------------------------------------------------------------------

.PHONY: install ## create the Python venv and install the Python and Rust tools the targets use
install: $(VENV)/.installed
	@rustup target list --installed | grep -qx $(NOSTD_TARGET) || rustup target add $(NOSTD_TARGET)
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y -q redis-server; } || { echo "redis-server is missing: apt-get install redis-server"; exit 1; }

$(VENV)/.installed: python/requirements-dev.txt
	@command -v python3 >/dev/null || { echo "python3 is missing: install Python >= 3.9 (apt-get install python3 python3-venv)"; exit 1; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r python/requirements-dev.txt
	touch $@

# ---- build ---------------------------------------------------------------------------------

.PHONY: build-python ## build the native module into the venv (maturin develop)
build-python: install
	cd python && maturin develop --release -q

.PHONY: build-wasm ## build the npm package (wasm-bindgen) into wasm/pkg
build-wasm:
	bash wasm/build.sh

# ---- run -----------------------------------------------------------------------------------

.PHONY: demo ## run the demo app on the memory store (http://127.0.0.1:8888/login)
demo: build-python build-wasm
	$(PY) -m ringsession.demo $(ARGS)

# ---- test ----------------------------------------------------------------------------------

.PHONY: test ## run every test: Rust, no_std build, fuzz (briefly), Python (with real Redis), JavaScript (Node + Chromium)
test: lint test-rust test-nostd test-fuzz test-python test-js

.PHONY: test-rust ## Rust unit, property, vector and doc tests; benches compile
test-rust:
	cargo test --workspace --exclude ringsession-py --exclude ringsession-wasm
	cargo bench --no-run -p ringsession-benches

.PHONY: test-nostd ## build the core for a bare-metal target and for wasm32
test-nostd:
	@rustup target list --installed | grep -qx $(NOSTD_TARGET) || rustup target add $(NOSTD_TARGET)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	cargo build -p ringsession-core --target $(NOSTD_TARGET)
	cargo build -p ringsession-core --target wasm32-unknown-unknown

# cargo fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
FUZZ := cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz
FUZZ_SECONDS ?= 10

.PHONY: install-fuzz ## install cargo-fuzz if it is missing
install-fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

.PHONY: test-fuzz ## run each fuzz target briefly (FUZZ_SECONDS each)
test-fuzz: install-fuzz
	$(FUZZ) run -O ring -- -max_total_time=$(FUZZ_SECONDS)
	$(FUZZ) run -O session_map -- -max_total_time=$(FUZZ_SECONDS)

.PHONY: fuzz ## run each fuzz target for 5 minutes
fuzz:
	$(MAKE) test-fuzz FUZZ_SECONDS=300

.PHONY: test-python ## pytest against real redis-server processes, and mypy.stubtest
test-python: build-python
	$(PY) -m pytest tests/python -q
	$(PY) -m mypy.stubtest ringsession._ringsession

.PHONY: test-js ## Node tests of the wasm package, the npm pack check and the Chromium test
test-js: build-wasm
	bash tests/js/run.sh

.PHONY: lint ## rustfmt --check, clippy -D warnings, ruff, mypy --strict
lint: install
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PY) -m ruff check .
	$(PY) -m mypy --strict python/py_src/ringsession

.PHONY: format ## format the Rust code
format:
	cargo fmt --all

# ---- benchmarks and vectors ----------------------------------------------------------------

.PHONY: bench ## criterion benches of the core, then the Python and Node peer comparisons
bench:
	cargo bench -p ringsession-benches
	$(MAKE) bench-python bench-js bench-load

.PHONY: bench-python ## Python HashRing and sessions against uhashring, hashring and a plain handler
bench-python: build-python
	$(PY) benches/python/bench.py

.PHONY: bench-load ## demo app on 3 Redis shards: 1000 sessions, 50 in flight, one shard stopped 3 s, a 4th added + rebalance
bench-load: build-python
	$(PY) benches/python/load.py

.PHONY: bench-js ## wasm HashRing against npm hashring
bench-js: build-wasm
	bash benches/js/run.sh

.PHONY: vectors ## regenerate tests/vectors/*.json from the real peer packages (review the diff)
vectors:
	python3 tests/vectors/gen/generate.py

.PHONY: clean ## remove build output, the venv and node_modules
clean:
	cargo clean
	rm -rf $(VENV) wasm/pkg node_modules tests/js/node_modules benches/js/node_modules wasm/tools/node_modules
