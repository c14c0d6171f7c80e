#!/bin/bash
# Counts the runs of 4+ lines that VM and container files share (issue 13's measure): the
# `duplicates` tool over the tree, its pairs whose one side is a VM file and the other a
# container file under src/ or include/ (tests left out), each row counting 1 + its
# "(+N more runs)". Prints the rows, then the total.
set -euo pipefail
cd "$(dirname "$0")/.."
duplicates --min-lines 4 --most 200 --seconds 120 |
  awk '
    $1 ~ /^D[0-9]+$/ {
      a = $2; b = $4; sub(/:.*/, "", a); sub(/:.*/, "", b)
      if (a ~ /^tests\// || b ~ /^tests\//) next
      va = (a ~ /(^|\/)(vm|domain)[^\/]*$/ || a ~ /api_routes/); ca = (a ~ /(^|\/)ct[^\/]*$/)
      vb = (b ~ /(^|\/)(vm|domain)[^\/]*$/ || b ~ /api_routes/); cb = (b ~ /(^|\/)ct[^\/]*$/)
      if (!((va && cb) || (ca && vb))) next
      n = 1
      if (match($0, /\(\+[0-9]+ more run/)) { s = substr($0, RSTART + 2); n += s + 0 }
      total += n; print
    }
    END { print "runs shared between VM and container files:", total + 0 }'
