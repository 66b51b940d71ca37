#!/usr/bin/env bash
# Issue 27's before/after rows at the demo's size (900 sources, 100 nights), one seed, a fixed
# epoch budget. Usage: scripts/issue27_rows.sh RUN_DIR [EPOCHS]   (RUN_DIR/survey is simulated
# first when absent). Every stage is skipped when its output exists, so a run cut short resumes.
# "before" (row 0) runs the code issue 27 branched from (f535f6d; override with BEFORE=REV), exported
# to RUN_DIR/main-src with git archive. (It used to be the merge base with main, which became main
# itself once issue 27 was merged, so row 0 silently trained with the fixed code.)
set -euo pipefail
R=$(realpath -m "$1"); EPOCHS=${2:-2}
cd "$(dirname "$0")/.."
bs() { brightscan "$@"; }
[ -f "$R/survey/labels.csv" ] || bs simulate --sources 900 --nights 100 --seed 0 --out "$R/survey"
# labels as before issue 27: the simulator's true peak (labels.csv keeps both columns)
python - "$R" <<'PY'
import sys, pandas as pd
r = sys.argv[1]
t = pd.read_csv(f"{r}/survey/labels.csv")
t.assign(label=t["label_true_peak"]).to_csv(f"{r}/labels_true_peak.csv", index=False)
PY
build() {  # name labels thinning
    [ -f "$R/ds-$1/dataset.json" ] || bs dataset build "$R/survey/alerts" --labels "$2" --out "$R/ds-$1" --thinning "$3"
}
build old "$R/labels_true_peak.csv" latest     # labels and thinning before issue 27
build new "$R/survey/labels.csv" btsbot        # observed labels, BTSbot's thinning
train() {  # row dataset preset precision class-weights [PYTHONPATH]
    local out="$R/models/$1"
    if [ ! -f "$out/metrics.json" ]; then
        PYTHONPATH="${6:-}" bs train "$R/ds-$2" --preset "$3" --out "$out" --epochs "$EPOCHS" --seed 0 \
            --precision "$4" ${5:+--class-weights "$5"}
    fi
    [ -f "$R/reports/$1/metrics.json" ] || bs evaluate "$out" "$R/ds-$2" --out "$R/reports/$1" \
        --scanner-saves "$R/survey/scanner_saves.csv"
}
if [ ! -d "$R/main-src" ]; then mkdir -p "$R/main-src" && git archive "${BEFORE:-f535f6d}" src | tar -x -C "$R/main-src"; fi
for ds in old new; do  # the ceiling first: it needs no training
    [ -f "$R/ceiling-$ds/ceiling.json" ] || bs experiment ceiling "$R/ds-$ds" --out "$R/ceiling-$ds" \
        --scanner-saves "$R/survey/scanner_saves.csv"
done
# row 0 trains with the branch point's code (bf16 reaching the features)
train 0-before old mi_cnn.icml2023 bf16 "" "$R/main-src/src"
train 5-btsbot-thinning new mi_cnn.icml2023_bn fp32 alert      # problem 4: thinning (every fix)
train 1-fp32-features old mi_cnn.icml2023 bf16 alert          # problem 1 fixed
train 3-batchnorm old mi_cnn.icml2023_bn fp32 alert            # problem 3
train 6-object-weights new mi_cnn.icml2023_bn fp32 object      # problem 5
build obs "$R/survey/labels.csv" latest        # observed labels, latest N_max
train 4-observed-labels obs mi_cnn.icml2023_bn fp32 alert      # problem 4: labels
train 2-fp32 old mi_cnn.icml2023 fp32 alert                    # problem 2: what auto picks without native bf16
python scripts/issue27_table.py "$R"
