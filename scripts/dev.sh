#!/usr/bin/env bash
# Set up everything this project needs (Debian packages, a virtualenv, the package itself)
# and then run one job:
#
#   bash scripts/dev.sh demo    # the demo card, read back through PC/SC
#   bash scripts/dev.sh test    # ruff + mypy + the import contract + the docs site + pytest
#   bash scripts/dev.sh setup   # only set up
#
# Idempotent: a second run installs nothing and goes straight to the job.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
JOB="${1:-setup}"
shift || true

# Debian packages: PC/SC daemon, the vsmartcard virtual reader driver, OpenSC and its tools,
# headers for building pyscard, a CJK font for rendering card-face images, openssl for tests,
# and vsmartcard's Python library (the vicc adapter; Debian installs it off sys.path).
APT_PACKAGES=(pcscd vsmartcard-vpcd opensc pcsc-tools libpcsclite-dev gcc openssl fonts-noto-cjk
    python3-virtualsmartcard)
# The test suite also renders the kiosk conformance report in headless Chromium, drives the
# live console page with Selenium through Debian's chromedriver, lists the
# host's addresses with iproute2's ip (network exposure test) and uses chattr (read-only images).
TEST_APT_PACKAGES=(chromium chromium-driver iproute2 e2fsprogs zsh)
VICC_PATH=/usr/lib/python3/site-packages/virtualsmartcard

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

need_root_for_apt() {
    if [ "$(id -u)" != 0 ]; then
        log "missing Debian packages: $* — run this script as root (or install them first)"
        exit 1
    fi
}

ensure_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root_for_apt "${missing[@]}"
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    ensure_apt python3 python3-venv python3-dev
    echo python3
}

ensure_venv() {
    local py stamp want
    py="$(pick_python)"
    # Debian's own python needs python3-venv (ensurepip) and python3-dev (Python.h for pyscard).
    if [ "$(command -v "$py")" = "/usr/bin/$py" ] || [ "$(command -v "$py")" = /usr/bin/python3 ]; then
        ensure_apt python3-venv python3-dev
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        "$py" -m venv "$VENV"
    fi
    want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/dev.sh" | sha256sum | cut -d' ' -f1)"
    stamp="$VENV/.mynacard-installed"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing the package, its test tools and its docs tools into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT[test,docs]"
        # Debian's virtualsmartcard needs the Crypto namespace (pycryptodome), and lives off
        # sys.path: a .pth file makes it importable from the venv (pcsc-runbook §5).
        "$VENV/bin/python" -m pip install -q pycryptodome
        local purelib
        purelib="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
        echo "$VICC_PATH" >"$purelib/debian-virtualsmartcard.pth"
        echo "$want" >"$stamp"
    fi
}

setup() {
    ensure_apt "${APT_PACKAGES[@]}"
    ensure_venv
}

run_tests() {
    cd "$ROOT"
    log "ruff"
    "$VENV/bin/ruff" check --no-cache .
    "$VENV/bin/ruff" format --no-cache --check . >/dev/null || {
        "$VENV/bin/ruff" format --diff . | head -50
        log "ruff format: files need formatting"
        exit 1
    }
    log "mypy"
    "$VENV/bin/mypy"
    "$VENV/bin/mypy" bench/*.py  # the benchmarks, as scripts importing the installed package
    "$VENV/bin/mypy" docs/*.py   # the docs site's page generators and MkDocs hooks
    log "import contract (docs/architecture.md)"
    "$VENV/bin/lint-imports"
    log "docs site (mkdocs build --strict: broken links, missing pages and anchors fail)"
    # Not --quiet: it hides the warnings --strict counts. The site goes to a temporary directory.
    local site
    site="$(mktemp -d)"
    if ! NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --site-dir "$site"; then
        rm -rf "$site"
        log "mkdocs build --strict failed"
        exit 1
    fi
    rm -rf "$site"
    log "pytest (pytest-xdist: one worker per core, each test file on one worker)"
    # Every test that needs pcscd starts its own on a private socket, so workers never share
    # one; --dist loadfile keeps a file's module-scoped fixtures (the bad-input corpus, the
    # built wheel) in one worker instead of building them once per worker.
    "$VENV/bin/python" -m pytest -n auto --dist loadfile "$@"
}

case "$JOB" in
    setup) setup ;;
    demo)
        setup
        exec "$VENV/bin/mynacard" demo "$@"
        ;;
    test)
        setup
        ensure_apt "${TEST_APT_PACKAGES[@]}"
        run_tests "$@"
        ;;
    *)
        log "unknown job '$JOB' (expected: setup, demo, test)"
        exit 2
        ;;
esac
