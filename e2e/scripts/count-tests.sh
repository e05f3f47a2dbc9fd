#!/usr/bin/env bash
# count-tests.sh LABEL LOG: sums the `test result:` lines cargo test wrote to LOG, so a run
# of many test binaries ends with one line a person (or CI) can read at a glance.
set -euo pipefail
label="$1" log="$2"
awk -v label="$label" '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/)  passed  += $(i - 1)
      if ($(i) ~ /^failed;?$/)  failed  += $(i - 1)
      if ($(i) ~ /^ignored;?$/) ignored += $(i - 1)
    }
    binaries++
  }
  END {
    printf "%s: %d passed, %d failed, %d ignored (%d test binaries)\n", label, passed, failed, ignored, binaries
    if (binaries == 0) { print label ": no test results found" > "/dev/stderr"; exit 1 }
  }' "$log"
