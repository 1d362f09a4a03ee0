#!/usr/bin/env bash
# Builds (once) a virtualenv holding NVIDIA's AIConfigurator for scripts/compare_aiconfigurator.py.
# It lives outside the project's .venv on purpose: aiconfigurator is a peer we measure against, not a
# dependency, and its pins (numpy>=2.1, pandas, pyarrow, scipy, plotting libraries) must not leak into ours.
#
# Usage: scripts/aic/setup.sh            -> prints the venv's python path on its last line
# Env:   AIC_VERSION (default below), AIC_PYTHON (interpreter to build the venv from, default python3.11),
#        AIC_VENV (where to put it; default ${XDG_CACHE_HOME:-$HOME/.cache}/advisor/aic-venv-<version>)
#
# Weight of the install: aiconfigurator 0.12.0 and aiconfigurator-core 0.12.0 declare no torch and no CUDA
# package (read from their METADATA); core is an 82 MB wheel because it carries the per-GPU kernel
# measurement tables (systems/data, ~95 MB unpacked). The remaining requirements are ordinary CPU wheels,
# pinned in requirements.txt next to this file so every machine gets the same solver and table versions.
set -euo pipefail

AIC_VERSION="${AIC_VERSION:-0.12.0}"
AIC_PYTHON="${AIC_PYTHON:-python3.11}"
AIC_VENV="${AIC_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/advisor/aic-venv-${AIC_VERSION}}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQUIREMENTS="$HERE/requirements.txt"
STAMP="$AIC_VENV/.aic-installed"

# The stamp records what was installed: a changed version or requirements file rebuilds the venv.
want="aiconfigurator==${AIC_VERSION} $(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "$AIC_VENV/bin/python"
  exit 0
fi

rm -rf "$AIC_VENV"
mkdir -p "$(dirname "$AIC_VENV")"
"$AIC_PYTHON" -m venv "$AIC_VENV"
"$AIC_VENV/bin/pip" install --quiet --upgrade pip >&2
# requirements.txt pins the two aiconfigurator packages for 0.12.0; another AIC_VERSION installs that version
# with the same pinned runtime deps, and --no-deps keeps pip from swapping them.
if [[ "$AIC_VERSION" == "0.12.0" ]]; then
  "$AIC_VENV/bin/pip" install --quiet --no-deps -r "$REQUIREMENTS" >&2
else
  grep -vE '^aiconfigurator(-core)?==' "$REQUIREMENTS" >"$AIC_VENV/requirements-deps.txt"
  "$AIC_VENV/bin/pip" install --quiet --no-deps -r "$AIC_VENV/requirements-deps.txt" \
    "aiconfigurator==${AIC_VERSION}" "aiconfigurator-core==${AIC_VERSION}" >&2
fi
"$AIC_VENV/bin/pip" check >&2
"$AIC_VENV/bin/python" -c "import aiconfigurator, aiconfigurator_core" >&2
echo "$want" >"$STAMP"
echo "$AIC_VENV/bin/python"
