#!/usr/bin/env bash
# Packs what a GPU machine needs to re-create the opt-mini-relu model there (the 91 MB model itself is too large
# to travel with a device job) into a git-ignored folder, by default .travel/opt-mini-relu/ (run it after
# tools/device/prepare.sh, which empties .travel/):
#   config.json             the model's configuration (for the step benchmark on random weights)
#   train_recipe.py         the model's own training script, copied from the model folder and checked against the
#                           sha256 its MODEL_CARD.md records
#   corpus/gutenberg-03.txt.xz  one of the three corpus files, xz-compressed (about 4.3 MB of 15.9 MB): 13 books,
#                           12 of split=train and the split=val book (The House of Mirth, PG 284)
#   corpus/index.tsv        the header and the index rows of that file (byte ranges, split, title, source)
#   corpus/SOURCES.md       the corpus's sources and licence (public domain; attribution kept with the copy)
# The OPT tokenizer files are not packed: the repository's models/opt-mini-256/ holds the same vocab.json and
# merges.txt, and tools/device/opt-mini-relu.sh takes them from there.
# Usage: tools/device/pack-opt-mini-relu.sh [--model DIR] [--corpus DIR] [--out DIR]
#   defaults: --model ../shared/models/opt-mini-relu  --corpus ../shared/corpus  --out .travel/opt-mini-relu
#   (../shared beside the checkout, or one level higher)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# ../shared beside the checkout (a worktree may sit one level deeper)
shared="$root/../shared"
[[ -d "$shared" ]] || shared="$root/../../shared"
model="$shared/models/opt-mini-relu"
corpus="$shared/corpus"
out="$root/.travel/opt-mini-relu"
file=gutenberg-03.txt
recipe_sha=29827d412158df4bd869b3df5b956ffae25ba7cb2756938ed92b523e2600b5f3
while (( $# )); do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --corpus) corpus="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "pack-opt-mini-relu.sh: unknown argument '$1' (expected --model, --corpus or --out)" >&2; exit 2 ;;
  esac
done
for f in "$model/train_recipe.py" "$model/config.json" "$corpus/$file" "$corpus/index.tsv" "$corpus/SOURCES.md"; do
  [[ -f "$f" ]] || { echo "pack-opt-mini-relu.sh: $f not found" >&2; exit 2; }
done
sha=$(sha256sum "$model/train_recipe.py" | cut -d' ' -f1)
if [[ "$sha" != "$recipe_sha" ]]; then
  echo "pack-opt-mini-relu.sh: $model/train_recipe.py has sha256 $sha, the model card records $recipe_sha" >&2
  exit 2
fi

rm -rf "$out"
mkdir -p "$out/corpus"
cp "$model/train_recipe.py" "$model/config.json" "$out/"
cp "$corpus/SOURCES.md" "$out/corpus/"
# index.tsv: header plus the rows of the one file that travels; the recipe reads exactly the files it names.
awk -F'\t' -v f="$file" 'NR == 1 || $1 == f' "$corpus/index.tsv" > "$out/corpus/index.tsv"
rows=$(($(wc -l < "$out/corpus/index.tsv") - 1))
val=$(awk -F'\t' 'NR > 1 && $4 == "val"' "$out/corpus/index.tsv" | wc -l)
if (( rows < 2 || val != 1 )); then
  echo "pack-opt-mini-relu.sh: $corpus/index.tsv has $rows rows for $file, $val of split=val (expected one)" >&2
  exit 2
fi
xz -9 -T0 -c "$corpus/$file" > "$out/corpus/$file.xz"
sha256sum "$corpus/$file" | sed "s#  .*#  $file#" > "$out/corpus/$file.sha256"
echo "packed $rows books of $file ($val held out) into $out"
du -sh "$out"
