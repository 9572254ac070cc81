#!/usr/bin/env bash
# The GPU check on a lent GPU machine, in one command (docs/PERFORMANCE.md, "GPU check"):
#
#     bash bench/gpu_check.sh            # carry [".whl"]: what `python bench/gpu_pack.py` wrote
#
# Installs the carried wheels (.whl/, listed in bench/gpu_wheels.txt) into /tmp, then runs
# `imdsr bench gpu` with python3 from this checkout. The report goes to stdout and to $OUT
# (report.md, report.json, logs/); without $OUT to bench-results/gpu-check. Extra arguments go to
# `imdsr bench gpu`. Without a GPU it still runs: every GPU step says why it was skipped.
set -u
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PYTHON:-python3}
OUT=${OUT:-bench-results/gpu-check}
mkdir -p "$OUT"
SITE=${IMDSR_GPU_CHECK_SITE:-/tmp/imdsr-gpu-site}
STUB=${IMDSR_GPU_CHECK_STUB:-/tmp/imdsr-gpu-stub-site}
carried="nothing (no .whl/ here)"

if [ -d .whl ]; then
  rm -rf "$SITE" "$STUB"
  mkdir -p "$SITE" "$STUB"
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
       .whl/*.whl 2>"$OUT/pip.log"; then
    # no pip here: a wheel is a zip of what goes into site-packages
    echo "gpu_check.sh: pip failed ($(tail -1 "$OUT/pip.log")); unzipping the wheels instead" >&2
    "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
      "$SITE" .whl/*.whl
  fi
  "$PY" - "$SITE" "$STUB" <<'EOF'
import sys, tarfile
from pathlib import Path
for name, dest in (("site-slim.tar.xz", sys.argv[1]), ("stub-site.tar.xz", sys.argv[2])):
    path = Path(".whl") / name
    if path.is_file():
        with tarfile.open(path) as tar:
            tar.extractall(dest, filter="tar")
EOF
  mib=$("$PY" -c 'import pathlib; print(f"{sum(p.stat().st_size for p in pathlib.Path(".whl").rglob("*") if p.is_file()) / 2**20:.1f}")')
  carried=".whl/ ${mib} MiB ($(ls .whl/*.whl 2>/dev/null | wc -l) wheels, slim packs, $(ls .whl/bsd100 2>/dev/null | wc -l) BSD100 images) installed into $SITE, stub site $STUB in $(( $(date +%s) - start )) s"
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  export IMDSR_GPU_CHECK_STUB_SITE="$STUB"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export IMDSR_GPU_CHECK_CARRY="$carried"
echo "gpu_check.sh: carried $carried" >&2

"$PY" -m imdsr bench gpu --out "$OUT" "$@"
rc=$?
echo "gpu_check.sh: $(( $(date +%s) - start )) s in all, exit code $rc"
exit $rc
