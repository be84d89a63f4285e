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

# strace: tests/streams/test_durability.py counts a commit's fsyncs with it, the proof
# that HONKER_SYNCHRONOUS=FULL is in force (the test fails without it in CI). Installed
# from Debian's archive when missing and this runs as root (CI, a fresh Debian 12).
if ! command -v strace >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt_log=$(mktemp)
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends strace; } >"$apt_log" 2>&1; then
      echo "setup: installed strace (for the fsync proof in tests/streams/test_durability.py)"
    else
      cat "$apt_log" >&2
      printf 'setup: warning: could not install strace with apt-get (network?); the fsync proof in tests/streams/test_durability.py will skip, or fail in CI.\n' >&2
    fi
    rm -f "$apt_log"
  else
    printf 'setup: note: strace is missing; the fsync proof in tests/streams/test_durability.py will skip, or fail in CI. Install it: sudo apt-get install strace\n' >&2
  fi
fi

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
