#!/usr/bin/env bash
#
# Download the Omniglot and Mini-ImageNet datasets used by supervised-reptile.
# Mini-ImageNet is cut out of ILSVRC2012_img_train.tar by byte ranges, read
# over HTTP (IMAGENET_TAR_URL) or from a local copy (IMAGENET_TAR).
#
# Usage: fetch_data.sh [omniglot] [omniglot-small] [miniimagenet]
#        (no argument fetches both; a dataset whose folder exists is skipped)
#
# Result:
#   $DATA_DIR/omniglot/<Alphabet>/<characterNN>/*.png
#   $DATA_DIR/omniglot_small/<Alphabet>/<characterNN>/*.png  (omniglot-small:
#     Lake's images_background_small1.zip, 5 alphabets, 136 characters, 1 MB;
#     enough for a first run of a few minutes; asked for by name only)
#   $DATA_DIR/miniimagenet/{train,val,test}/<wnid>/*.JPEG
#
# Each dataset is assembled in a temporary folder $DATA_DIR/.fetch_tmp.XXXXXX,
# which is removed on exit; the dataset folder appears only through a single
# `mv` once it is complete and checked, so an interrupted or failed run leaves
# no half dataset behind (it also keeps nothing: a new run starts over, and
# removes the temporary folders of runs that were killed outright).
#
# Environment variables:
#   DATA_DIR                   where the datasets go (default: data, relative
#                              to the current directory).
#   OMNIGLOT_URL               base URL of images_background.zip and
#                              images_evaluation.zip (default:
#                              https://github.com/brendenlake/omniglot/raw/master/python).
#   OMNIGLOT_EXPECT_ALPHABETS  expected number of alphabets (default: 50).
#   OMNIGLOT_EXPECT_CHARACTERS expected number of characters (default: 1623).
#   OMNIGLOT_EXPECT_PER_CHARACTER
#                              expected PNG files per character (default: 20).
#   IMAGENET_TAR_URL           URL of ILSVRC2012_img_train.tar; the server must
#                              support HTTP range requests (default:
#                              http://www.image-net.org/challenges/LSVRC/2012/nnoupb/ILSVRC2012_img_train.tar).
#   IMAGENET_TAR               path of a local copy of ILSVRC2012_img_train.tar;
#                              when set and not empty, the images are cut out
#                              of it with seeks (GNU dd) and IMAGENET_TAR_URL
#                              is not used. A missing or unreadable file, or one
#                              shorter than the largest byte range, fails before
#                              anything is fetched (default: unset).
#   MINIIMAGENET_METADATA      folder of the Mini-ImageNet CSVs,
#                              <subset>/<wnid>.csv for subsets train, val, test,
#                              one "<file>.JPEG,<start>-<end>" line per image
#                              (inclusive byte range in the tar) (default:
#                              metadata/miniimagenet next to this script, which
#                              ships the metadata/miniimagenet folder of
#                              openai/supervised-reptile, MIT licence).
#   FETCH_JOBS                 parallel range requests (or, with IMAGENET_TAR,
#                              reads) per class (default: 8).
#
set -euo pipefail

PROG=$(basename "$0")
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DATA_DIR=${DATA_DIR:-data}
OMNIGLOT_URL=${OMNIGLOT_URL:-https://github.com/brendenlake/omniglot/raw/master/python}
OMNIGLOT_URL=${OMNIGLOT_URL%/}
OMNIGLOT_EXPECT_ALPHABETS=${OMNIGLOT_EXPECT_ALPHABETS:-50}
OMNIGLOT_EXPECT_CHARACTERS=${OMNIGLOT_EXPECT_CHARACTERS:-1623}
OMNIGLOT_EXPECT_PER_CHARACTER=${OMNIGLOT_EXPECT_PER_CHARACTER:-20}
IMAGENET_TAR_URL=${IMAGENET_TAR_URL:-http://www.image-net.org/challenges/LSVRC/2012/nnoupb/ILSVRC2012_img_train.tar}
IMAGENET_TAR=${IMAGENET_TAR:-}
MINIIMAGENET_METADATA=${MINIIMAGENET_METADATA:-$SCRIPT_DIR/metadata/miniimagenet}
FETCH_JOBS=${FETCH_JOBS:-8}

die() {
  printf '%s: error: %s\n' "$PROG" "$*" >&2
  exit 1
}

usage() {
  sed -n '3,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
}

# Last non-empty line of a (curl) error text, on one line.
last_line() {
  local text=$1 line last=""
  while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] && last=$line
  done <<< "$text"
  printf '%s' "${last:-no error message}"
}

# ---------------------------------------------------------------- arguments
want_omniglot=0
want_omniglot_small=0
want_miniimagenet=0
if (( $# == 0 )); then
  want_omniglot=1
  want_miniimagenet=1
fi
for arg in "$@"; do
  case $arg in
    omniglot) want_omniglot=1 ;;
    omniglot-small) want_omniglot_small=1 ;;
    miniimagenet) want_miniimagenet=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$arg'; usage: $PROG [omniglot] [omniglot-small] [miniimagenet] (see $PROG --help)" ;;
  esac
done

for var in OMNIGLOT_EXPECT_ALPHABETS OMNIGLOT_EXPECT_CHARACTERS OMNIGLOT_EXPECT_PER_CHARACTER FETCH_JOBS; do
  [[ ${!var} =~ ^[0-9]+$ ]] || die "$var must be a non-negative integer, got '${!var}'"
done
(( FETCH_JOBS >= 1 )) || die "FETCH_JOBS must be at least 1"

mkdir -p "$DATA_DIR"
# A run killed outright (SIGKILL, power loss) cannot remove its temporary
# folder; remove those whose recorded process is gone, so that re-running
# starts over cleanly instead of leaving gigabytes behind.
for stale in "$DATA_DIR"/.fetch_tmp.*; do
  [[ -d $stale && -f $stale/pid ]] || continue
  owner=$(cat "$stale/pid" 2>/dev/null || true)
  if [[ $owner =~ ^[0-9]+$ ]] && kill -0 "$owner" 2>/dev/null; then
    echo "$PROG: $stale belongs to running process $owner; leaving it alone"
  else
    echo "$PROG: removing $stale, left by an interrupted run"
    rm -rf "$stale"
  fi
done
TMP=$(mktemp -d "$DATA_DIR/.fetch_tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
echo $$ > "$TMP/pid"
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ----------------------------------------------------------------- Omniglot
# fetch_omniglot_set FOLDER ALPHABETS CHARACTERS ARCHIVE...: the archives'
# alphabets merged into $DATA_DIR/FOLDER, checked against the expected counts.
fetch_omniglot_set() {
  local folder=$1 expect_alphabets=$2 expect_characters=$3
  shift 3
  local dest=$DATA_DIR/$folder
  if [[ -e $dest ]]; then
    echo "$folder: $dest exists, skipping"
    return 0
  fi
  local work=$TMP/${folder}_zips out=$TMP/$folder name url err alphabet
  mkdir -p "$work" "$out"
  for name in "$@"; do
    url=$OMNIGLOT_URL/$name.zip
    echo "$folder: downloading $url"
    if ! err=$(curl -fsSL --retry 3 -o "$work/$name.zip" "$url" 2>&1); then
      die "download of $url failed: $(last_line "$err"); set OMNIGLOT_URL to a mirror holding $*"
    fi
    if ! err=$(unzip -q "$work/$name.zip" -d "$work" 2>&1); then
      die "could not unzip $name.zip from $url: $(last_line "$err")"
    fi
    [[ -d $work/$name ]] || die "$name.zip from $url has no top folder $name/"
    for alphabet in "$work/$name"/*/; do
      alphabet=${alphabet%/}
      [[ -d $alphabet ]] || continue
      [[ ! -e $out/${alphabet##*/} ]] || die "alphabet ${alphabet##*/} appears in both archives"
      mv "$alphabet" "$out/"
    done
    rm -rf "${work:?}/$name" "$work/$name.zip"
  done
  rm -rf "$work"

  echo "$folder: checking"
  local n_alphabets n_characters n_png bad
  n_alphabets=$(find "$out" -mindepth 1 -maxdepth 1 -type d | wc -l)
  n_characters=$(find "$out" -mindepth 2 -maxdepth 2 -type d | wc -l)
  n_png=$(find "$out" -mindepth 3 -maxdepth 3 -type f -name '*.png' | wc -l)
  n_alphabets=${n_alphabets//[[:space:]]/}
  n_characters=${n_characters//[[:space:]]/}
  n_png=${n_png//[[:space:]]/}
  (( n_alphabets == expect_alphabets )) ||
    die "$folder: expected $expect_alphabets alphabets, found $n_alphabets (set OMNIGLOT_EXPECT_ALPHABETS to override)"
  (( n_characters == expect_characters )) ||
    die "$folder: expected $expect_characters characters, found $n_characters (set OMNIGLOT_EXPECT_CHARACTERS to override)"
  (( n_png == n_characters * OMNIGLOT_EXPECT_PER_CHARACTER )) ||
    die "$folder: expected $((n_characters * OMNIGLOT_EXPECT_PER_CHARACTER)) PNG files ($OMNIGLOT_EXPECT_PER_CHARACTER per character), found $n_png"
  # Every character folder must hold exactly the expected number of PNGs.
  bad=$(find "$out" -mindepth 3 -maxdepth 3 -type f -name '*.png' |
        sed 's|/[^/]*$||' | sort | uniq -c |
        awk -v n="$OMNIGLOT_EXPECT_PER_CHARACTER" '$1 != n { print; exit }')
  [[ -z $bad ]] ||
    die "$folder: expected $OMNIGLOT_EXPECT_PER_CHARACTER PNG files per character, found: ${bad#"${bad%%[![:space:]]*}"}"

  [[ ! -e $dest ]] || die "$dest appeared while downloading; not overwriting it"
  mv "$out" "$dest"
  echo "$folder: done, $n_alphabets alphabets, $n_characters characters, $n_png images in $dest"
}

fetch_omniglot() {
  fetch_omniglot_set omniglot "$OMNIGLOT_EXPECT_ALPHABETS" "$OMNIGLOT_EXPECT_CHARACTERS" \
    images_background images_evaluation
}

# The first-run subset: 136 real characters of 5 alphabets.
fetch_omniglot_small() {
  fetch_omniglot_set omniglot_small "${OMNIGLOT_EXPECT_ALPHABETS_SMALL:-5}" \
    "${OMNIGLOT_EXPECT_CHARACTERS_SMALL:-136}" images_background_small1
}

# ------------------------------------------------------------ Mini-ImageNet

# Record the first failure of a range copy (later ones are dropped).
record_failure() {
  ( set -C; printf '%s\n' "$1" > "$FETCH_FAIL_FILE" ) 2>/dev/null || true
}

# Copy one byte range of the tar: fetch_range START END FILENAME. Reads the
# local IMAGENET_TAR with a seek when it is set, else asks IMAGENET_TAR_URL
# with an HTTP range request. Run by xargs in a child bash; reads
# FETCH_CLASS, FETCH_CLASS_DIR, FETCH_FAIL_FILE, IMAGENET_TAR(_URL).
fetch_range() {
  local start=$((10#$1)) end=$((10#$2)) name=$3
  local out=$FETCH_CLASS_DIR/$name expected err actual src hint
  [[ -e $FETCH_FAIL_FILE ]] && return 1   # another copy failed: stop early
  expected=$((end - start + 1))
  if [[ -n $IMAGENET_TAR ]]; then
    src=$IMAGENET_TAR
    hint="is IMAGENET_TAR a complete ILSVRC2012_img_train.tar that nothing writes to while this runs?"
    # GNU dd: skip and count in bytes; skip seeks, so a piece costs its own size.
    if ! err=$(dd if="$src" of="$out" bs=1M skip="$start" count="$expected" \
                  iflag=skip_bytes,count_bytes status=none 2>&1); then
      record_failure "reading $FETCH_CLASS/$name (bytes $start-$end of $src) failed: $(last_line "$err"); $hint"
      return 1
    fi
  else
    src=$IMAGENET_TAR_URL
    hint="set IMAGENET_TAR_URL to a mirror of ILSVRC2012_img_train.tar that supports HTTP range requests, or IMAGENET_TAR to a local copy"
    if ! err=$(curl -fsS --retry 3 --max-filesize "$expected" -r "$start-$end" \
                    -o "$out" "$src" 2>&1); then
      record_failure "download of $FETCH_CLASS/$name (bytes $start-$end of $src) failed: $(last_line "$err"); $hint"
      return 1
    fi
    hint="truncated answer, or a server ignoring range requests; $hint"
  fi
  actual=$(wc -c < "$out")
  actual=${actual//[[:space:]]/}
  if (( actual != expected )); then
    record_failure "$FETCH_CLASS/$name: got $actual bytes for bytes $start-$end of $src, expected $expected; $hint"
    return 1
  fi
}

# Checks everything Mini-ImageNet needs before any dataset is fetched: the
# metadata CSVs, each turned into $TMP/ranges/<subset>/<wnid> ("<start> <end>
# <file>.JPEG" lines), and a local IMAGENET_TAR long enough for every range.
# Sets MINI_CSVS, empty when the dataset folder exists already.
MINI_CSVS=()
plan_miniimagenet() {
  local dest=$DATA_DIR/miniimagenet
  if [[ -e $dest ]]; then
    echo "miniimagenet: $dest exists, skipping"
    return 0
  fi
  local meta=$MINIIMAGENET_METADATA
  local hint="the CSVs ship in metadata/miniimagenet next to $PROG (the folder of the same name in openai/supervised-reptile, MIT licence), laid out as <subset>/<wnid>.csv for train, val, test; set MINIIMAGENET_METADATA to point elsewhere"
  [[ -d $meta ]] || die "Mini-ImageNet metadata folder $meta not found; $hint"
  local subset csv found wnid jobs n
  local -a csvs=()
  for subset in train val test; do
    found=0
    for csv in "$meta/$subset"/*.csv; do
      [[ -f $csv ]] || continue
      csvs+=("$csv")
      found=1
    done
    (( found )) || die "no CSV files in $meta/$subset; $hint"
  done

  for csv in "${csvs[@]}"; do
    subset=${csv%/*}
    subset=${subset##*/}
    wnid=${csv##*/}
    wnid=${wnid%.csv}
    jobs=$TMP/ranges/$subset/$wnid
    mkdir -p "${jobs%/*}"
    # CSV line "<file>.JPEG,<start>-<end>" -> "<start> <end> <file>.JPEG".
    awk -F',' -v csv="$csv" '
      { sub(/\r$/, "") }
      /^[[:space:]]*$/ { next }
      {
        if (NF != 2 || $1 !~ /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/ || $2 !~ /^[0-9]+-[0-9]+$/) {
          printf "%s line %d: expected <file>.JPEG,<start>-<end>, got: %s\n", csv, FNR, $0
          exit 1
        }
        split($2, r, "-")
        if (r[2] + 0 < r[1] + 0) {
          printf "%s line %d: range end before start: %s\n", csv, FNR, $0
          exit 1
        }
        print r[1], r[2], $1
      }' "$csv" > "$jobs" || die "malformed CSV: $(last_line "$(cat "$jobs")")"
    n=$(wc -l < "$jobs")
    n=${n//[[:space:]]/}
    (( n > 0 )) || die "$csv lists no images"
  done

  if [[ -n $IMAGENET_TAR ]]; then
    local tar=$IMAGENET_TAR size last
    [[ -e $tar ]] || die "IMAGENET_TAR: no such file: $tar"
    [[ -f $tar ]] || die "IMAGENET_TAR: not a regular file: $tar"
    size=$(wc -c 2>/dev/null < "$tar") || die "IMAGENET_TAR: cannot read $tar"
    size=${size//[[:space:]]/}
    # %.0f: awk holds numbers as doubles, exact far beyond the tar's size,
    # but may print large ones in exponent form.
    last=$(awk '$2 + 0 > m { m = $2 + 0 } END { printf "%.0f\n", m }' "$TMP"/ranges/*/*)
    (( size > last )) ||
      die "IMAGENET_TAR: $tar has $size bytes, but the metadata reads up to byte $last (the complete ILSVRC2012_img_train.tar has 147897477120): truncated copy?"
    dd if=/dev/null of=/dev/null iflag=skip_bytes,count_bytes status=none 2>/dev/null ||
      die "IMAGENET_TAR needs GNU dd (coreutils) for iflag=skip_bytes,count_bytes; this dd lacks it"
  fi
  MINI_CSVS=("${csvs[@]}")
}

fetch_miniimagenet() {
  (( ${#MINI_CSVS[@]} > 0 )) || return 0   # the dataset folder exists
  local dest=$DATA_DIR/miniimagenet out=$TMP/miniimagenet total=${#MINI_CSVS[@]} k=0
  local csv subset wnid jobs n n_files
  export IMAGENET_TAR IMAGENET_TAR_URL FETCH_CLASS FETCH_CLASS_DIR FETCH_FAIL_FILE=$TMP/fetch_failed
  export -f fetch_range record_failure last_line
  if [[ -n $IMAGENET_TAR ]]; then
    echo "miniimagenet: reading $total classes from $IMAGENET_TAR"
  else
    echo "miniimagenet: fetching $total classes from $IMAGENET_TAR_URL"
  fi
  for csv in "${MINI_CSVS[@]}"; do
    k=$((k + 1))
    subset=${csv%/*}
    subset=${subset##*/}
    wnid=${csv##*/}
    wnid=${wnid%.csv}
    jobs=$TMP/ranges/$subset/$wnid
    FETCH_CLASS=$subset/$wnid
    FETCH_CLASS_DIR=$out/$subset/$wnid
    mkdir -p "$FETCH_CLASS_DIR"
    n=$(wc -l < "$jobs")
    n=${n//[[:space:]]/}
    echo "miniimagenet: [$k/$total] $FETCH_CLASS ($n images)"
    if ! xargs -P "$FETCH_JOBS" -n 3 bash -c 'fetch_range "$@"' fetch_range < "$jobs"; then
      [[ -s $FETCH_FAIL_FILE ]] || die "range copies for $FETCH_CLASS failed"
    fi
    [[ ! -s $FETCH_FAIL_FILE ]] || die "$(head -n 1 "$FETCH_FAIL_FILE")"
    n_files=$(find "$FETCH_CLASS_DIR" -type f | wc -l)
    n_files=${n_files//[[:space:]]/}
    (( n_files == n )) ||
      die "$FETCH_CLASS: $csv lists $n images but $n_files files were written (duplicate file names?)"
  done

  [[ ! -e $dest ]] || die "$dest appeared while fetching; not overwriting it"
  mv "$out" "$dest"
  echo "miniimagenet: done, $total classes in $dest"
}

# Mini-ImageNet's inputs are checked first, so that a bad CSV or IMAGENET_TAR
# fails at once rather than after the Omniglot download.
(( want_miniimagenet )) && plan_miniimagenet
(( want_omniglot )) && fetch_omniglot
(( want_omniglot_small )) && fetch_omniglot_small
(( want_miniimagenet )) && fetch_miniimagenet
exit 0
