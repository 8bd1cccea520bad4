"""4 KiB random reads at queue depth 1 with libnbd (run by bench/serve.ts).
usage: /usr/bin/python3 _latency.py URI SIZE COUNT SEED -> JSON latencies in µs"""
import json, random, sys, time
import nbd

uri, size, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
h = nbd.NBD()
h.connect_uri(uri)
rng = random.Random(seed)
blocks = size // 4096
for _ in range(200):  # warm-up
    h.pread(4096, rng.randrange(blocks) * 4096)
lat = []
for _ in range(count):
    off = rng.randrange(blocks) * 4096
    t = time.perf_counter_ns()
    h.pread(4096, off)
    lat.append((time.perf_counter_ns() - t) / 1000)
h.shutdown()
lat.sort()
print(json.dumps({"mean": sum(lat) / len(lat), "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}))
