#!/usr/bin/env bash
# The GPU check, sized for one short loan of one GPU (at most 9.5 minutes, one command):
#
#  (a) at most 3 minutes, each step under its own `timeout` (and 3 s more to be killed):
#      1. import check (torch, CUDA, the GPU, the workflow's packages)        20 s
#      2. the self-test, in strict capture mode (benchmarks/gpu_selftest.py)   60 s
#      3. the training-step benchmark, batch 32, 32/64/128 px                  50 s
#      4. the mosaic benchmark, 2048 px, 64 px windows, stride 32              50 s
#      then a one-screen summary of (a);
#  (b) at most 5.5 minutes (330 s, and 3 s more to be killed): the full study at the study's own settings (config/dubai.yaml:
#      stride 16, 20 epochs, both inits, 32/64/128 px, both images, the tables), in a scratch
#      folder, through `snakemake --cores 16 --resources gpu=4` with strict capture. gpu=4:
#      16 cores at train.threads 4 run four jobs at once; on one GPU they share it through the
#      GPU slots, so the start-up of one job (about 15 s of imports, CUDA and data, mostly CPU)
#      overlaps the captured steps of the others instead of leaving the GPU idle 12 times in a
#      row; more jobs would oversubscribe the CPUs and only time-slice the GPU further.
#      Printed for every job, also when the study is cut short: its GPU slot, start-up
#      seconds, epochs and seconds per epoch, how its training and validation steps ran
#      (captured, N replays / eager, because ...), how it ended; then the tables, wall time.
#
#   bash benchmarks/gpu_check.sh DUBAI_DIR [a|b|ab]       # default ab
#
# DUBAI_DIR holds images/image_part_005.jpg, masks/image_part_005.png and part 008 likewise
# (on a lent machine: .device/data/dubai-tile8, see ../shared/tools/device-prep.sh).
# Worst case (a) + (b): 180 + 330 s and 5 x 3 s to kill, 525 s: with the device's start line
# (installing .device's wheels, about half a minute) the whole command stays under 600 s.
# Where $OUT is set (the lent machine's folder that comes back) the step outputs, the study's
# log, job logs and tables are copied there at the end, also when the check is cut short.
# GPU_CHECK_DEVICE=cpu runs it without a GPU, as a smoke test of the script only (with
# GPU_CHECK_STUDY_SECONDS set low, the study is cut short there: the path a slow GPU takes).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=$(realpath "${1:?usage: gpu_check.sh DUBAI_DIR [a|b|ab]}")
parts=${2:-ab}
device=${GPU_CHECK_DEVICE:-cuda}
study_limit=${GPU_CHECK_STUDY_SECONDS:-330}
export AERIALSEG_STRICT_CAPTURE=1
began=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/aerialseg-gpu-check.XXXXXX")
cd "$root"

# what the check saw goes back with the machine's $OUT, however the check ends
keep() {
  [ -n "${OUT:-}" ] || return 0
  cp "$work"/*.out "$work"/*.log "$OUT"/ 2>/dev/null
  [ -d "$work/study/results" ] && cp -r "$work/study/results/logs" "$work/study/results/summary" "$OUT"/ 2>/dev/null
  return 0
}
trap keep EXIT

say() { printf '\n== %s (%d s into the check)\n' "$*" $((SECONDS - began)); }
quiet() { grep --line-buffered -v -E "it/s\]|batch/s\]|window/s\]"; }
declare -a summary=()

# run NAME LIMIT COMMAND...: under `timeout`, its output shown as it comes and kept in
# $work/NAME.out; the exit status and seconds go to the summary.
run() {
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout --kill-after=3 "$limit" "$@" > >(tee "$work/$name.out" | quiet) 2>&1
  local status=$?
  sleep 0.2  # let tee finish
  local what="exit $status"
  [ $status -eq 124 ] || [ $status -eq 137 ] && what="CUT at its ${limit} s limit"
  summary+=("$(printf '%-22s %-26s %3d s' "$name" "$what" $((SECONDS - start)))")
  return $status
}

[ -f "$data/images/image_part_005.jpg" ] && [ -f "$data/masks/image_part_008.png" ] \
  || { echo "the Dubai pair (parts 005 and 008) is not in $data"; exit 2; }
echo "scratch folder: $work"

if [[ $parts == *a* ]]; then
  say "(a) 1. import check"
  run imports 20 python3 -c "
import sys, torch, segmentation_models_pytorch, snakemake, rasterio, aerialseg.train, aerialseg.mosaic
print(f'Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, '
      f'cuDNN {torch.backends.cudnn.version()}, smp {segmentation_models_pytorch.__version__}')
if '$device' == 'cuda':
    assert torch.cuda.is_available(), 'no CUDA GPU is visible'
    p = torch.cuda.get_device_properties(0)
    print(f'GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}')
"
  [ $? -eq 0 ] || { echo "the import check failed: nothing else can run (install the package, make setup or" \
                          "pip install -e ., or put src/ on PYTHONPATH as device-prep's start line does)"; exit 2; }
  say "(a) 2. self-test, strict capture"
  run self-test 60 python3 benchmarks/gpu_selftest.py "$data" --device "$device"
  say "(a) 3. training step, batch 32"
  run train-step 50 python3 benchmarks/train_throughput.py --device "$device" --steps 30
  say "(a) 4. mosaic, 2048 px, 64 px windows, stride 32"
  run mosaic 50 python3 benchmarks/mosaic_throughput.py --device "$device" --size 2048 --patch 64 --huge 0

  say "(a) summary"
  printf '%s\n' "${summary[@]}"
  grep -h -E "^(FAIL|self-test:)" "$work/self-test.out" 2>/dev/null
  grep -h -E "^device:|^\| (patch|32|64|128) \|" "$work/train-step.out" 2>/dev/null
  grep -h -E "^torch|^\| (prediction|baseline|aerialseg) \||vs baseline|px \(image" "$work/mosaic.out" 2>/dev/null
fi

if [[ $parts == *b* ]]; then
  mkdir -p "$work/study/data" && ln -s "$data" "$work/study/data/dubai"
  say "(b) the study on the Dubai pair: 6 cases, stride 16, 20 epochs, gpu=4 (limit ${study_limit} s)"
  extra=()
  [ "$device" = cpu ] && { printf 'train:\n  device: cpu\n' > "$work/cpu.yaml"; extra=("$work/cpu.yaml"); }
  study_start=$SECONDS
  # In a session of its own, so that whatever of the study outlives its timeout (a job that
  # ignored the interrupt) is killed with it instead of holding the GPU after the check.
  setsid timeout --signal=INT --kill-after=3 "$study_limit" \
    snakemake -s "$root/Snakefile" -d "$work/study" --cores 16 --resources gpu=4 \
    --configfile "$root/config/dubai.yaml" "${extra[@]}" > "$work/snakemake.log" 2>&1 &
  study_pid=$!
  wait "$study_pid"
  status=$?
  kill -KILL -- "-$study_pid" 2>/dev/null
  study_seconds=$((SECONDS - study_start))
  results="$work/study/results"
  say "(b) every GPU job, from its log"
  python3 benchmarks/job_logs.py "$results"
  grep -h -E "steps \([0-9]+%\) done|^Error|Exception|exit status" "$work/snakemake.log" | tail -n 4
  if [ $status -eq 0 ]; then
    say "(b) the study's tables"
    cat "$results/summary/training.md"; echo; cat "$results/summary/evaluation.md"
    printf '\nthe full study (6 cases, both images, tables): %d s of wall time on one GPU, exit status 0\n' "$study_seconds"
  else
    printf '\nthe full study did NOT finish: stopped after %d s (limit %d s), exit status %d; see %s/snakemake.log\n' \
      "$study_seconds" "$study_limit" "$status" "$work"
  fi
  summary+=("$(printf '%-22s %-26s %3d s' study "exit $status" "$study_seconds")")
fi

say "done"
printf '%s\n' "${summary[@]}"
echo "logs and outputs: $work"
