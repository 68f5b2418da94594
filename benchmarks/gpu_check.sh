#!/usr/bin/env bash
# The GPU check: on a machine with one CUDA GPU and the Dubai pair, in at most 6 minutes,
#   1. the unit tests (the CUDA-only ones run here, they skip elsewhere),
#   2. the training-step benchmark (study's pipeline, eager step, captured step),
#   3. the mosaic benchmark (the study's patch-by-patch loop against the device mosaic),
#   4. the full study at the study's own settings (config/dubai.yaml: stride 16, 20 epochs,
#      both inits, 32/64/128 px, both images) through
#      `snakemake --cores 16 --resources gpu=1`, in a scratch folder,
# then prints the study's tables, its job overheads and its wall time last. The study gets
# what is left of the budget; if it cannot finish in that time, it is stopped, the script
# says so and shows what did finish.
#
#   bash benchmarks/gpu_check.sh [DUBAI_DIR]      # default data/dubai; GPU_CHECK_SECONDS=360
#
# DUBAI_DIR holds images/image_part_00N.jpg and masks/image_part_00N.png (Tile 8).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data=$(realpath "${1:-data/dubai}")
budget=${GPU_CHECK_SECONDS:-360}
began=$SECONDS
cd "$root"

say() { printf '\n== %s (%d s into the check)\n' "$*" $((SECONDS - began)); }

[ -f "$data/images/image_part_005.jpg" ] && [ -f "$data/masks/image_part_008.png" ] \
  || { echo "the Dubai pair (Tile 8, parts 005 and 008) is not in $data"; exit 2; }
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "no CUDA GPU is visible: this check is for a GPU machine"; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import sys, torch; print(f'Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}')"

say "1. unit tests"
python3 -m pytest -q -m "not workflow" -p no:cacheprovider 2>&1 | tail -n 15

say "2. training step, batch 32"
python3 benchmarks/train_throughput.py --device cuda --steps 50

say "3. mosaic, 64 px windows, stride 32"
python3 benchmarks/mosaic_throughput.py --device cuda --patch 64 --huge 20000

left=$((budget - (SECONDS - began) - 10))
work=$(mktemp -d "${TMPDIR:-/tmp}/aerialseg-gpu-check.XXXXXX")
mkdir -p "$work/data" && ln -s "$data" "$work/data/dubai"
say "4. the study on the Dubai pair: six cases, stride 16, 20 epochs ($left s left of the ${budget} s budget)"
if [ "$left" -lt 30 ]; then
  echo "no time is left for the study"; exit 1
fi
study_start=$SECONDS
timeout --signal=INT --kill-after=20 "$left" \
  snakemake -s "$root/Snakefile" -d "$work" --cores 16 --resources gpu=1 --configfile "$root/config/dubai.yaml" \
  > "$work/snakemake.log" 2>&1
status=$?
study_seconds=$((SECONDS - study_start))
grep -E "^(Job stats|job|train|predict|evaluate|total)|steps \(100%\) done|Error|error" "$work/snakemake.log" | tail -n 20

results="$work/results"
if [ $status -eq 0 ]; then
  say "the study's tables"
  cat "$results/summary/training.md"; echo; cat "$results/summary/evaluation.md"
  echo; python3 benchmarks/job_overhead.py "$results"
  echo; echo "train jobs whose steps ran as captured CUDA graphs: $(grep -l "training step: captured as a CUDA graph" "$results"/logs/train/*.log | wc -l) of $(ls "$results"/logs/train/*.log | wc -l)"
  grep -h "capturing a CUDA graph failed" "$results"/logs/train/*.log | head -n 3
  printf '\nthe full study (6 cases, both images, tables): %d s of wall time, end to end, on one GPU\n' "$study_seconds"
else
  say "the study did not finish"
  python3 - "$results" <<'PY'
import sys
from pathlib import Path
import pandas as pd
results = Path(sys.argv[1])
for case in sorted((results / "cases").glob("*_p*")):
    line = f"{case.name}: "
    history = case / "history.csv"
    if history.exists():
        h = pd.read_csv(history)
        line += f"trained, {len(h)} epochs in {h.seconds.sum():.0f} s, best val mIoU {h.val_miou.max():.4f}"
    else:
        line += "not trained"
    line += "; predicted" if (case / "test" / "prediction.png").exists() else ""
    print(line)
PY
  printf '\nthe full study did NOT fit: stopped after %d s (the %d s left of the %d s budget), exit status %d; see %s/snakemake.log\n' \
    "$study_seconds" "$left" "$budget" "$status" "$work"
  exit 1
fi
