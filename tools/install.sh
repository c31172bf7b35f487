#!/usr/bin/env bash
# Install mmdensenet and its pinned dependencies into the current Python environment.
#
#   bash tools/install.sh         classification, configs, tools and the demo (mmcv-lite)
#   bash tools/install.sh tests   also the compiled mmcv 2.1.0, mmdet and the test tools
#   bash tools/install.sh oldest  the oldest supported stack (requirements/oldest.txt) and the test
#                                 tools, in a virtual environment of its own; prints its python
#
# Idempotent: a second run only re-installs mmdensenet itself. The compiled mmcv is built
# once from source and its wheel kept in $MMDENSENET_CACHE (default ~/.cache/mmdensenet),
# in a folder named by everything that fixes its ABI: mmcv, torch, Python, machine, CUDA or CPU.
set -euo pipefail

mode=${1:-runtime}
case "$mode" in
  runtime | tests | oldest) ;;
  *) echo "usage: bash tools/install.sh [runtime|tests|oldest]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${MMDENSENET_CACHE:-$HOME/.cache/mmdensenet}
mmcv_version=2.1.0

export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() { python -m pip install --quiet "$@"; }

# Prints the installed mmcv distribution: "mmcv", "mmcv-lite" or nothing.
installed_mmcv() {
  python -c "
from importlib.metadata import version, PackageNotFoundError
for name in ('mmcv', 'mmcv-lite'):
    try:
        if version(name) == '$mmcv_version':
            print(name)
            break
    except PackageNotFoundError:
        pass
"
}

# Prints the cache folder name of a compiled mmcv for the installed torch and Python.
abi_key() {
  python -c "
import platform, sys, torch
ops = f'cu{torch.version.cuda}' if torch.version.cuda and torch.cuda.is_available() else 'cpu'
print(f'mmcv$mmcv_version-torch{torch.__version__}-cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}-{ops}')
"
}

# mmcv 2.1.0 ships no wheel for this torch, and its setup.py asks for C++17 while
# torch 2.14's headers need C++20: build the CPU ops from the sdist with that flag raised.
build_mmcv_wheel() {
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "Building mmcv $mmcv_version with ops (about 15 minutes, once per machine)..."
  pip_install ninja
  python -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    -d "$work" "mmcv==$mmcv_version"
  tar -xzf "$work/mmcv-$mmcv_version.tar.gz" -C "$work"
  sed -i 's/-std=c++17/-std=c++20/g' "$work/mmcv-$mmcv_version/setup.py"
  (cd "$work/mmcv-$mmcv_version" &&
    MMCV_WITH_OPS=1 MAX_JOBS=2 python -m pip wheel --quiet --no-deps --no-build-isolation \
      -w "$work/dist" .)
  mkdir -p "$1"
  mv "$work"/dist/mmcv-"$mmcv_version"-*.whl "$1/"
}

install_full_mmcv() {
  [ "$(installed_mmcv)" = mmcv ] && return
  wheels="$cache/wheels/$(abi_key)"
  compgen -G "$wheels/mmcv-$mmcv_version-*.whl" > /dev/null || build_mmcv_wheel "$wheels"
  python -m pip uninstall --quiet -y mmcv-lite 2> /dev/null || true
  pip_install --no-deps "$wheels"/mmcv-"$mmcv_version"-*.whl
}

# The oldest stack in a virtual environment of its own, installed from wheels downloaded once for
# each version of requirements/oldest.txt (about 3 GB: torch's CUDA build brings its nvidia packages).
install_oldest() {
  wheels="$cache/wheels/oldest" venv="$cache/envs/oldest"
  stamp="$wheels/.complete-$(sha256sum requirements/oldest.txt | cut -c1-12)"
  if [ ! -e "$stamp" ]; then
    python -m pip download --quiet -d "$wheels" -r requirements/oldest.txt >&2
    touch "$stamp"
  fi
  [ -x "$venv/bin/python" ] || python -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" -r requirements/oldest.txt >&2
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation "$root" >&2
  echo "$venv/bin/python"
}

cd "$root"
if [ "$mode" = oldest ]; then
  install_oldest
  exit
fi
pip_install -r requirements/runtime.txt
if [ "$mode" = tests ]; then
  install_full_mmcv
  pip_install -r requirements/tests.txt
elif [ -z "$(installed_mmcv)" ]; then
  pip_install "mmcv-lite==$mmcv_version"
fi
# A regular (not editable) install: only it gives mim the package's .mim folder.
pip_install --no-deps --no-build-isolation "$root"
