#!/usr/bin/env bash
# Creates .venv in the repository root with everything the project needs, including
# Honker 0.5.0 and, on glibc < 2.38 only, the repair of its bundled SQLite.
# Idempotent: a second run with unchanged inputs returns in well under a second.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv="$root/.venv"
python_bin=${PYTHON:-python3}

die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

command -v "$python_bin" >/dev/null || die "no '$python_bin' on PATH. Install Python 3.11+ (Debian: apt-get install python3 python3-venv), or set PYTHON=/path/to/python3."
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed, found $("$python_bin" -V 2>&1). Set PYTHON=/path/to/python3.11."

# System tools some tests need, from Debian's archive when missing and this runs as root
# (CI, a fresh Debian 12): strace (tests/streams/test_durability.py counts a commit's
# fsyncs with it, the proof that HONKER_SYNCHRONOUS=FULL is in force) and chromium (the
# live run view is tested in a real headless browser, tests/http/test_view.py) and curl
# (the HTTP examples of the README and docs/ run as typed, tests/test_readme.py). Each
# test fails in CI without its tool and skips elsewhere.
apt_updated=0
need_tool() {  # need_tool COMMAND PACKAGE WHAT-FOR
  command -v "$1" >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_log=$(mktemp)
    if { { [ "$apt_updated" = 1 ] || apt-get update -qq; } && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$2"; } >"$apt_log" 2>&1; then
      apt_updated=1
      echo "setup: installed $2 ($3)"
    else
      cat "$apt_log" >&2
      printf 'setup: warning: could not install %s with apt-get (network?); %s will skip, or fail in CI.\n' "$2" "$3" >&2
    fi
    rm -f "$apt_log"
  else
    printf 'setup: note: %s is missing; %s will skip, or fail in CI. Install it: sudo apt-get install %s\n' "$1" "$3" "$2" >&2
  fi
}
need_tool strace strace "the fsync proof in tests/streams/test_durability.py"
need_tool chromium chromium "the browser tests of the live run view"
need_tool curl curl "the curl examples of README.md and docs/http.md (tests/test_readme.py)"

# Re-run only when what the setup installs has changed.
stamp="$venv/.setup-stamp"
want=$(cat pyproject.toml bootstrap/setup.sh bootstrap/honker_repair.py | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import honker' 2>/dev/null; then
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  "$python_bin" -m venv "$venv" \
    || die "could not create $venv. On Debian: apt-get install python3-venv, then run this again."
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

quiet "${pip[@]}" install "uv>=0.4" "pyelftools>=0.31" || die "could not install uv and pyelftools from the package index (network?)."

glibc_old=$("$venv/bin/python" -c 'import sys; sys.path.insert(0, "bootstrap"); import honker_repair as r; print(int(r.needs_repair()))')
if [ "$glibc_old" = 1 ]; then
  # PyPI has only manylinux_2_38 wheels of honker 0.5.0; pip would fall back to an old
  # source release that cannot build offline. uv can install the wheel for that tag.
  "$venv/bin/uv" pip install -q --python "$venv/bin/python" \
    --python-platform "$(uname -m)-manylinux_2_38" --no-deps "honker==0.5.0" \
    || die "could not install the honker 0.5.0 wheel with uv."
  "$venv/bin/python" bootstrap/honker_repair.py \
    || die "the honker SQLite repair failed; see the message above."
fi

quiet "${pip[@]}" install -e ".[test]" || die "installing the project and its test extras failed."

"$venv/bin/python" - <<'PY' || die "honker is installed but does not work; see the error above."
import os, tempfile, honker
with tempfile.TemporaryDirectory() as d:
    db = honker.open(os.path.join(d, "probe.db"))
    with db.transaction() as tx:
        tx.query("SELECT honker_stream_publish('probe', NULL, '{}')")
    db.close()
PY

echo "$want" > "$stamp"
echo "setup: .venv ready ($("$venv/bin/python" -V), honker $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("honker"))'))"
