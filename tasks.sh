#!/usr/bin/env bash
# The project's entry points. On a fresh machine each one installs everything it needs first.
#   bash tasks.sh report   the main job: run every experiment (cached) and build the book
#   bash tasks.sh test     the whole test suite (what CI runs)
#   bash tasks.sh setup    only install (virtualenv in .venv from requirements.lock, the package, system packages)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
VENV=.venv
pip_q() { "$VENV/bin/pip" --disable-pip-version-check -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }

setup_python() {
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  # exact versions of everything, direct and transitive; reinstalled only when the lock changes
  if ! cmp -s requirements.lock "$VENV/.installed-lock"; then
    echo "tasks.sh: installing the locked environment (requirements.lock)"
    pip_q install -r requirements.lock
    cp requirements.lock "$VENV/.installed-lock"
  fi
  if ! cmp -s pyproject.toml "$VENV/.installed-pyproject" || ! "$VENV/bin/python" -c "import moons_vae" 2>/dev/null; then
    pip_q install --no-deps -e .
    cp pyproject.toml "$VENV/.installed-pyproject"
  fi
}

setup_system() {
  # Debian packages the tests need: chromium (browser checks of the book) and postgresql (shared Optuna studies)
  local need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "tasks.sh: installing Debian packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

check_sync() {
  # nbs/ is the source: exporting and cleaning must not change any tracked file
  local before after
  before=$(git status --porcelain -- nbs moons_vae; git diff -- nbs moons_vae | sha1sum)
  "$VENV/bin/nbdev-export"
  "$VENV/bin/nbdev-clean"
  after=$(git status --porcelain -- nbs moons_vae; git diff -- nbs moons_vae | sha1sum)
  if [ "$before" != "$after" ]; then
    echo "tasks.sh: nbdev-export or nbdev-clean changed tracked files: the package is out of sync with nbs/ or a notebook has outputs/metadata:" >&2
    git status --porcelain -- nbs moons_vae >&2
    exit 1
  fi
}

case "${1:-}" in
  setup)  setup_python; setup_system ;;
  report)
    setup_python
    "$VENV/bin/nbdev-export"
    shift; "$VENV/bin/moons-vae" report "$@" ;;
  test)
    setup_python; setup_system
    check_sync
    echo "tasks.sh: notebook tests (nbdev-test over the library notebooks)"
    "$VENV/bin/nbdev-test" --file-re '^[0-9][0-9][a-z]?_.*\.ipynb$'
    echo "tasks.sh: pytest"
    shift; "$VENV/bin/pytest" "$@" ;;
  *) echo "usage: bash tasks.sh {report|test|setup} [args passed on]" >&2; exit 2 ;;
esac
