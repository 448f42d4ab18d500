#!/usr/bin/env bash
# Which images `make all` builds and runs: prints `cpu` or `cuda` on stdout and one line on
# stderr that says why. GPU=auto (the default): a GPU that `nvidia-smi -L` lists and a Docker
# engine with the NVIDIA runtime -> cuda (the gpu compose profile); no GPU -> cpu; a GPU but no
# NVIDIA runtime in Docker -> an error naming what to install (GPU=0 runs on the CPU instead).
# GPU=1 forces cuda images (e.g. to archive them for a GPU machine), GPU=0 forces cpu.
#   GPU=auto|0|1 docker/scripts/gpu.sh
set -euo pipefail
say() { echo "make all: $*" >&2; }
case ${GPU:-auto} in
0) say "GPU=0 -> CPU images (medtrans/*:<version>-cpu), compose profile cpu"; echo cpu; exit 0 ;;
1) say "GPU=1 -> CUDA images (medtrans/*:<version>-cuda), compose profile gpu"; echo cuda; exit 0 ;;
auto) ;;
*) echo "error: GPU=${GPU} (use GPU=auto, GPU=0 or GPU=1)" >&2; exit 2 ;;
esac
gpus=""
command -v nvidia-smi >/dev/null 2>&1 && gpus=$(timeout 30 nvidia-smi -L 2>/dev/null | grep -E '^GPU [0-9]+' || true)
if [ -z "$gpus" ]; then
    say "no GPU (nvidia-smi lists none) -> CPU images, compose profile cpu"
    echo cpu
    exit 0
fi
n=$(printf '%s\n' "$gpus" | wc -l)
first=$(printf '%s\n' "$gpus" | head -n1 | sed -E 's/^GPU 0: ([^(]*[^ (]).*/\1/')
if ! runtimes=$(timeout 20 docker info --format '{{json .Runtimes}}' 2>/dev/null); then
    say "$n GPU(s), but no Docker engine answers -> CPU images (the local path uses the GPU by itself)"
    echo cpu
    exit 0
fi
if [[ $runtimes == *'"nvidia"'* ]]; then
    say "$n GPU(s) ($first) and Docker has the NVIDIA runtime -> CUDA images, compose profile gpu (GPU=0 for the CPU)"
    echo cuda
    exit 0
fi
cat >&2 <<MSG
error: nvidia-smi sees $n GPU(s) ($first), but Docker has no NVIDIA runtime, so containers cannot use them.
  Install the NVIDIA Container Toolkit (package nvidia-container-toolkit, from NVIDIA's repository:
  https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html), then
    sudo nvidia-ctk runtime configure --runtime=docker && sudo systemctl restart docker
  Or run on the CPU: make all GPU=0
MSG
exit 3
