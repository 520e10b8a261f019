#!/usr/bin/env bash
# CPU seconds of a live `pir serve` (before|after) per search, 4 clients, 240 uploads of 8 stored drawings.
set -u
v=$1; src=/work/wt-before; [ $v = before ] || src=/work/main; port=$((8800 + RANDOM % 100))
data=/work/bs/data-$v; [ $v = before ] || data=/work/bs/data-after
cd $src
if [ "${MODE:-serve}" = factory ]; then
  PYTHONPATH=$src PIR_DATA_DIR=$data PIR_SERVE__MAX_CONCURRENT=2 /work/main/.venv/bin/python -m uvicorn --factory pir.web.app:app_from_env --host 127.0.0.1 --port $port --log-level warning --no-access-log > /work/bs/cpu-$v.server.log 2>&1 &
else
  PYTHONPATH=$src /work/main/.venv/bin/pir --data-dir $data serve --port $port > /work/bs/cpu-$v.server.log 2>&1 &
fi
pid=$!
for i in $(seq 80); do curl -sf localhost:$port/api/health >/dev/null && break; sleep 0.5; done
/work/main/.venv/bin/python - $port $pid $v <<'PY'
import sys, glob, threading, time, httpx, os
from pathlib import Path
port, pid, v = sys.argv[1], int(sys.argv[2]), sys.argv[3]
qs = sorted(glob.glob("/work/bs/corpus/**/SYN00000[0-9]*_FIG[1-4].png", recursive=True))[:8]
blobs = [(Path(q).name, Path(q).read_bytes()) for q in qs]
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def run(n, lat):
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        for i in range(n):
            n_, b = blobs[i % 8]; t0 = time.perf_counter()
            assert c.post("/api/search", files=[("images", (n_, b, "image/png"))], data={"k": "10"}).status_code == 200
            lat.append(time.perf_counter() - t0)
run(16, [])
lat = []; c0 = cpu(); t0 = time.time()
ts = [threading.Thread(target=run, args=(240 // int(os.environ.get("CLIENTS", "4")), lat)) for _ in range(int(os.environ.get("CLIENTS", "4")))]
[t.start() for t in ts]; [t.join() for t in ts]
c1 = cpu(); lat.sort()
print(f"{v}: {len(lat)} searches, server CPU {1000*(c1-c0)/len(lat):.1f} ms/search, wall {time.time()-t0:.1f} s, p50 {1000*lat[len(lat)//2]:.0f} ms p95 {1000*lat[int(len(lat)*.95)]:.0f} ms")
PY
kill $pid; wait $pid 2>/dev/null
