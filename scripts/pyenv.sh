#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment of the PyTorch
# distillation engine at .venv in the repository root: the pinned packages of
# python/requirements.txt, then the vlora_torch package (pip install -e python).
#
#   scripts/pyenv.sh          # idempotent; a no-op in about a second when up to date
#
# The environment is up to date when .venv/.vlora-stamp holds the SHA-256 of
# python/requirements.txt and python/pyproject.toml, or when `pip freeze`
# already lists every pinned version (a venv made elsewhere, or a symlink to
# one, which is then only checked, never changed). The first run downloads
# PyTorch (about 5 GB with its CUDA libraries).
#
# Environment: VLORA_VENV (default <repo>/.venv), PYTHON (the interpreter that
# creates the venv; default python3, 3.10 or newer).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VLORA_VENV:-$root/.venv}
req=$root/python/requirements.txt
proj=$root/python/pyproject.toml
for f in "$req" "$proj"; do
  [ -f "$f" ] || { echo "pyenv.sh: $f is missing" >&2; exit 2; }
done
want=$(cat "$req" "$proj" | sha256sum | cut -d' ' -f1)
stamp=$venv/.vlora-stamp
py=$venv/bin/python

if [ -x "$py" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

# pinned prints the name==version lines of requirements.txt, names normalised
# as pip freeze prints them (lower case, '-' for '_' and '.').
pinned() { sed 's/[[:space:]]*#.*//; s/[[:space:]]//g' "$req" | awk -F'==' 'NF == 2 { n = tolower($1); gsub(/[_.]+/, "-", n); print n "==" $2 }' | sort; }
frozen() { "$py" -m pip freeze --disable-pip-version-check 2>/dev/null | awk -F'==' 'NF == 2 { n = tolower($1); gsub(/[_.]+/, "-", n); print n "==" $2 }' | sort; }
# satisfied reports whether every pin is installed and vlora_torch imports
# from this repository's python/ folder (installed, or on PYTHONPATH).
satisfied() {
  [ -x "$py" ] || return 1
  local missing
  missing=$(comm -23 <(pinned) <(frozen))
  [ -z "$missing" ] || return 1
  PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH} "$py" -c 'import vlora_torch, sys; sys.exit(0 if vlora_torch.__file__.startswith(sys.argv[1]) else 1)' "$root/python/" 2>/dev/null
}

if [ -L "$venv" ]; then
  # A link to an environment made elsewhere: check it, never change it.
  if satisfied; then exit 0; fi
  echo "pyenv.sh: $venv links to $(readlink "$venv"), which lacks the pinned packages:" >&2
  comm -23 <(pinned) <(frozen) >&2 || true
  echo "pyenv.sh: remove the link and rerun to build a local environment" >&2
  exit 1
fi

if satisfied; then
  echo "$want" > "$stamp"
  exit 0
fi

if [ ! -x "$py" ]; then
  base=${PYTHON:-python3}
  command -v "$base" >/dev/null 2>&1 || { echo "pyenv.sh: $base not found; install Python 3.10 or newer (python3-venv)" >&2; exit 1; }
  "$base" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
    { echo "pyenv.sh: $base is older than 3.10" >&2; exit 1; }
  echo "pyenv.sh: creating $venv" >&2
  "$base" -m venv "$venv"
fi
echo "pyenv.sh: installing $req into $venv (the first time downloads PyTorch, about 5 GB)" >&2
"$py" -m pip install --disable-pip-version-check -q --upgrade pip >&2
"$py" -m pip install --disable-pip-version-check -q -r "$req" >&2
"$py" -m pip install --disable-pip-version-check -q --no-deps -e "$root/python" >&2
if ! satisfied; then
  echo "pyenv.sh: $venv still lacks pinned packages after installing:" >&2
  comm -23 <(pinned) <(frozen) >&2 || true
  exit 1
fi
echo "$want" > "$stamp"
echo "pyenv.sh: $venv is ready" >&2
