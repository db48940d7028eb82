#!/usr/bin/env bash
# Optional frameworks for tests/frameworks: the CPU build of torch 2.13 (these machines carry
# its wheel locally; the bare name would pull several GB of CUDA packages) and JAX on the CPU.
# The framework tests skip cleanly where either is missing.
set -euo pipefail
python -m pip install --quiet "torch==2.13.0+cpu" || python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet "jax>=0.4.30" "jaxlib>=0.4.30"
