#!/usr/bin/env bash
# npm pretest: makes sure the machine has what the tests call outside Node, so that no test skips.
# Missing Debian packages are installed when this user may (root, or sudo without a password);
# otherwise it stops with one line naming the command to run.
set -euo pipefail
cd "$(dirname "$0")/../.."

# "package: what the tests use from it" (commands, or a shared library the tests dlopen)
NEEDS=(
  "llvm-14: llvm-mc-14 opt-14 llc-14"   # encoder/disassembler oracle; the LLVM target's optimizer and code generator
  "llvm-14-dev: llvm-config-14"         # builds the llvm-bindings addon (the LLVM target's IR builder)
  "cmake: cmake"                        # ... with cmake-js
  "g++: g++"                            # ... and a C++ compiler
  "lld-14: ld.lld-14"                   # links the AArch64 harnesses and the LLVM kernels
  "qemu-user: qemu-aarch64"             # runs AArch64 kernels on this x86-64 machine
  "libopenblas0-pthread: libopenblas.so.0"  # OpenBLAS sgemm, the CPU baseline (loaded through koffi)
  "redis-server: redis-server"          # the measurement farm's Redis (tests/targets/farm start their own on 127.0.0.1)
)

has() {
  case "$1" in
    *.so*) { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | awk -v lib="$1" '$1 == lib { found = 1 } END { exit !found }' ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing_packages() {
  local entry package probe
  for entry in "${NEEDS[@]}"; do
    package="${entry%%:*}"
    for probe in ${entry#*:}; do
      if ! has "$probe"; then echo "$package"; break; fi
    done
  done
}

mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "the tests need what these Debian packages provide, and this machine has no apt-get: ${missing[*]}" >&2
    exit 1
  elif [ "$(id -u)" -eq 0 ]; then sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"
  else
    echo "the tests need Debian packages that are missing; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "pretest: installing the Debian packages the tests need: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null  # (sudo drops a plain VAR=)
  mapfile -t still < <(missing_packages)
  if ((${#still[@]})); then
    echo "apt-get installed ${missing[*]} but these still lack what the tests use: ${still[*]}" >&2
    exit 1
  fi
fi

# llvm-bindings is an optional dependency built by npm install; without llvm-14-dev then, npm left it out
loads_llvm_bindings() { node -e "require('llvm-bindings')" >/dev/null 2>&1; }
if ! loads_llvm_bindings; then
  echo "pretest: building the llvm-bindings addon (npm install; about 2 minutes)"
  npm install --no-audit --no-fund >/dev/null
  if ! loads_llvm_bindings; then
    echo "llvm-bindings does not load after npm install; see: node -e \"require('llvm-bindings')\"" >&2
    exit 1
  fi
fi
