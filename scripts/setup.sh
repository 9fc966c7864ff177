#!/usr/bin/env bash
# dydis set-up: everything both README commands need, installed once per machine at user level and reused.
#
#   1. a Python venv with PyPI torch==2.13.0 (its libtorch is what tch 0.26 links against), nbclient, jupyterlab
#   2. evcxr_jupyter 0.22.0 (the Rust Jupyter kernel), built with `cargo install`
#   3. the link .dydis/libtorch -> that libtorch, which .cargo/config.toml hands to torch-sys as LIBTORCH
#
# Location: $DYDIS_HOME, else ${XDG_CACHE_HOME:-~/.cache}/dydis. Set LIBTORCH to use a libtorch 2.13.0 of your own.
# Idempotent and quick when everything is in place. Run with -q for less output.
set -euo pipefail

TORCH_VERSION=2.13.0
EVCXR_VERSION=0.22.0
PY_TOOLS=(nbclient jupyterlab)

quiet=0
[ "${1:-}" = "-q" ] && quiet=1
say() { [ $quiet = 1 ] || echo "dydis setup: $*" >&2; }
die() { echo "dydis setup: error: $*" >&2; exit 1; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${DYDIS_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/dydis}
venv=$home/venv
mkdir -p "$home" || die "cannot create the cache directory $home (set DYDIS_HOME to a writable place)"

# The version of a libtorch directory: the wheel's version.py, or a C++ distribution's build-version.
torch_version_of() {
  local dir=$1
  if [ -f "$dir/version.py" ]; then
    sed -n "s/^__version__ = '\([^'+]*\).*/\1/p" "$dir/version.py"
  elif [ -f "$dir/build-version" ]; then
    cut -d+ -f1 < "$dir/build-version"
  fi
}

# --- 1. Python venv: torch (for its libtorch), nbclient, jupyterlab ---------------------------------------------
stamp=$venv/.dydis-installed
want="torch==$TORCH_VERSION ${PY_TOOLS[*]}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  command -v python3 >/dev/null || die "python3 is needed to install torch and Jupyter from PyPI (apt-get install python3 python3-venv)"
  if [ -d "$venv" ]; then
    have=$(torch_version_of "$(ls -d "$venv"/lib/python3*/site-packages/torch 2>/dev/null | head -n1)" || true)
    if [ -n "$have" ] && [ "$have" != "$TORCH_VERSION" ]; then
      die "the venv $venv holds torch $have, but dydis needs torch $TORCH_VERSION (tch 0.26 links libtorch $TORCH_VERSION exactly). Remove it (rm -rf '$venv') and run this again."
    fi
  else
    say "creating $venv"
    python3 -m venv "$venv" || die "python3 -m venv failed (apt-get install python3-venv)"
  fi
  say "installing torch==$TORCH_VERSION (about 2.6 GB download, 4.7 GB on disk) and ${PY_TOOLS[*]} from PyPI into $venv"
  pipq=(); [ $quiet = 1 ] && pipq=(-q)
  "$venv/bin/python" -m pip install "${pipq[@]}" --disable-pip-version-check "torch==$TORCH_VERSION" "${PY_TOOLS[@]}" \
    || die "pip install failed (see above); nothing was marked installed, so the next run retries"
  echo "$want" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
fi

# --- system libraries from Debian's packages: HDF5 (for 3dshapes.h5) -----------------------------------------------
if ! dpkg -s libhdf5-dev >/dev/null 2>&1 && [ ! -f /usr/include/hdf5/serial/hdf5.h ]; then
  # (the empty array is expanded as "${sudo[@]+"${sudo[@]}"}": plain "${sudo[@]}" of an empty array is an
  # "unbound variable" under set -u in older bash)
  if [ "$(id -u)" = 0 ]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=(none); fi
  [ "${sudo[*]:-}" != none ] || die "the HDF5 library is missing: run 'sudo apt-get install libhdf5-dev' once, then this again"
  say "installing libhdf5-dev (Debian package; needed to read 3dshapes.h5)"
  ${sudo[@]+"${sudo[@]}"} apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive ${sudo[@]+"${sudo[@]}"} apt-get install -y -qq libhdf5-dev >/dev/null \
    || die "apt-get install libhdf5-dev failed (see above)"
fi

# --- the libtorch that the build will use ------------------------------------------------------------------------
if [ -n "${LIBTORCH:-}" ]; then
  libtorch=$LIBTORCH
  say "using LIBTORCH=$libtorch from the environment"
else
  libtorch=$(ls -d "$venv"/lib/python3*/site-packages/torch 2>/dev/null | head -n1)
  [ -n "$libtorch" ] || die "torch is missing from $venv although it is marked installed; remove $venv and run this again"
fi
[ -f "$libtorch/lib/libtorch_cpu.so" ] || die "$libtorch has no lib/libtorch_cpu.so: not a libtorch directory"
have=$(torch_version_of "$libtorch")
[ "$have" = "$TORCH_VERSION" ] || die "libtorch at $libtorch is version '${have:-unknown}', but dydis needs $TORCH_VERSION (tch 0.26). Unset LIBTORCH or point it at a $TORCH_VERSION install."
mkdir -p "$root/.dydis"
if [ "$(readlink "$root/.dydis/libtorch" 2>/dev/null)" != "$libtorch" ]; then
  ln -sfn "$libtorch" "$root/.dydis/libtorch.tmp" && mv -T "$root/.dydis/libtorch.tmp" "$root/.dydis/libtorch"
fi

# --- 2. evcxr_jupyter ------------------------------------------------------------------------------------------
evcxr=$home/evcxr/bin/evcxr_jupyter
if [ ! -x "$evcxr" ] || [ "$(cat "$home/evcxr/.dydis-version" 2>/dev/null)" != "$EVCXR_VERSION" ]; then
  command -v cargo >/dev/null || die "cargo is needed (install Rust 1.95 with rustup)"
  say "building evcxr_jupyter $EVCXR_VERSION into $home/evcxr (8-10 min on 2 cores, once per machine)"
  cargo install --locked --quiet --force --root "$home/evcxr" "evcxr_jupyter@$EVCXR_VERSION" \
    || die "cargo install evcxr_jupyter@$EVCXR_VERSION failed (see above)"
  echo "$EVCXR_VERSION" > "$home/evcxr/.dydis-version"
fi
say "ready: libtorch $have at $libtorch; evcxr_jupyter at $evcxr"
