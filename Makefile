# latentedit: `make demo` and `make test` do all set-up on a fresh clone.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
PROTO_SRC := protos/latentedit/v1/latentedit.proto protos/latentedit/v1/jobs.proto

.PHONY: demo test lint typecheck proto proto-check sync-client bench soak fuzz redis-server clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first, so that `torch>=2.2` is already met (no CUDA download).
	$(BIN)/pip install -q "torch==$(TORCH_VERSION)" || $(BIN)/pip install -q "torch==$(TORCH_VERSION)" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev]"
	# The dcgan-faces weights ship inside this package; its runtime deps are not needed.
	$(BIN)/pip install -q --no-deps "gan-face-generate==1.1.1"
	touch $@

redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing redis-server"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server; fi; }

demo: $(BIN)/.installed redis-server
	$(BIN)/latentedit demo --with-stack --out out/demo.png

test: $(BIN)/.installed redis-server
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

typecheck: lint

proto: $(BIN)/.installed
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=protos --grpc_python_out=protos \
	  --pyi_out=protos $(PROTO_SRC)

proto-check: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests/test_proto_fresh.py

# client/sync_client.py and sync_jobs.py are generated from their async twins (tests/test_sync_client_fresh.py).
sync-client: $(BIN)/.installed
	$(BIN)/python scripts/gen_sync_client.py

# >= 10,000 malformed calls across every RPC against a private stack; prints the status histogram.
fuzz: $(BIN)/.installed redis-server
	$(BIN)/python bench/fuzz.py --calls 10000

bench: $(BIN)/.installed redis-server
	$(BIN)/python bench/throughput.py

soak: $(BIN)/.installed redis-server
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) out build *.egg-info
