#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run: the CUDA tests, then the GPU
# benchmarks, each step time-boxed and logged to OUTDIR/<step>.txt.
#
#     bash benchmarks/gpu_checks.sh [OUTDIR]        (from the repository root)
#
# Needs sourceclf importable (installed, or PYTHONPATH=.), a CUDA build of torch
# and the test extra.  PYTHON (default python3) is the interpreter; SUITE_SECONDS
# (default 0: off) also runs the whole test suite on the GPU machine (device
# 'auto' is then CUDA) with pytest-xdist, for that many seconds at most, right
# after the CUDA tests and the image-model benchmark.  BUDGET_SECONDS (default
# 0: none) caps the whole run: each later step gets what is left of it (a step
# that would get under 20 s is skipped), so that a lease's time limit never
# cuts the run off before its logs are written.
# Figures go to benchmarks/README.rst ("GPU" section) with the device's name.
set -u
out=${1:-gpu_checks_out}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

start=$SECONDS
budget=${BUDGET_SECONDS:-0}

step() {  # step NAME SECONDS COMMAND...: run, log, report the exit status
    local name=$1 limit=$2
    shift 2
    if [ "$budget" -gt 0 ]; then
        local left=$((budget - (SECONDS - start)))
        [ "$left" -lt "$limit" ] && limit=$left
        if [ "$limit" -lt 20 ]; then
            echo "=== $name: skipped (${left}s of the budget left)"
            return
        fi
    fi
    echo "=== $name ($(date +%T))"
    timeout "$limit" "$@" > "$out/$name.txt" 2>&1
    local rc=$?
    tail -n 40 "$out/$name.txt"
    echo "=== $name: exit $rc"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step versions 60 "$py" -c "import sys, torch, numpy, astropy, sklearn, sourceclf
print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda,
      torch.cuda.get_device_name(0), 'numpy', numpy.__version__, 'astropy',
      astropy.__version__, 'sklearn', sklearn.__version__, 'sourceclf', sourceclf.__version__)"
step cuda_tests 300 "$py" -m pytest -ra -p no:cacheprovider tests/test_cuda.py \
    tests/test_classify.py::test_bf16_and_compile_on_cuda \
    tests/test_image_models.py::test_image_models_on_gpu
step image_models 150 "$py" benchmarks/bench_image_models.py --device cuda --threads 4 \
    --n 32768 --batch-size 4096 --seconds 3
if [ "${SUITE_SECONDS:-0}" -gt 0 ]; then
    step suite "$SUITE_SECONDS" "$py" -m pytest -v -ra -p no:cacheprovider -p no:benchmark -n 12 tests
fi
step image_models_bf16 150 "$py" benchmarks/bench_image_models.py --device cuda --threads 4 \
    --n 32768 --batch-size 4096 --seconds 3 --precision bf16
step models_bf16_compile 200 "$py" benchmarks/bench_models.py --device cuda --precision bf16 \
    --compile --rows 1000000 --repeat 3
step catalog 120 "$py" benchmarks/make_catalog.py 1000000 "$out/cat_1M.fits"
step end_to_end 240 "$py" benchmarks/bench_end_to_end.py "$out/cat_1M.fits" --device cuda \
    --repeat 1
rm -f "$out"/*.fits  # the 1M-row catalog and outputs
echo "=== done ($(date +%T))"
