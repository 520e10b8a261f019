#!/usr/bin/env bash
# pir bench serve: before (619932e, pre issues 16-17) vs after (main HEAD), same synthetic corpus, alternating runs.
# Paths are those of the machine it ran on (/work/main = this repo at HEAD, /work/wt-before = a worktree at 619932e).
set -euo pipefail
PY=/work/main/.venv/bin
cd /work/bs
[ -d corpus ] || PYTHONPATH=/work/main $PY/pir synth corpus --patents 120 > synth.log 2>&1
for v in before after; do
  src=/work/wt-before; [ $v = after ] && src=/work/main
  if [ ! -f ingested-$v ]; then
    (cd $src && PYTHONPATH=$src $PY/pir --data-dir /work/bs/data-$v ingest /work/bs/corpus --json > /work/bs/ingest-$v.json 2>/work/bs/ingest-$v.err)
    touch ingested-$v
  fi
done
for round in ${ROUNDS:-1 2 3}; do
  for v in ${ORDER:-before after}; do
    src=/work/wt-before; [ $v = after ] && src=/work/main
    (cd $src && PYTHONPATH=$src $PY/pir --data-dir /work/bs/data-$v bench serve --searches 300 --clients 10 --cold-runs 0 > /work/bs/serve-$v-$round.json 2>/work/bs/serve-$v-$round.err)
    echo "$(date +%T) $v round $round done"
  done
done
