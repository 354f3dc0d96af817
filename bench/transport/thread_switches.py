#!/usr/bin/env python3
"""bench/transport/thread_switches.py BUILD [raw2 | JOB FLAGS...]: per thread and per 4 KiB
request, the voluntary and involuntary context switches and the CPU µs of a running dense
push+pull over TCP (`tessera launch --servers 1 --workers 1 ... --sync=asp --shm=off`, with
JOB FLAGS such as --auth=none --caller_leads=true), or of the raw ZeroMQ echo pair
(`raw2`: ps_bench --bench_mode=baseline --echo_bind / --echo_connect). Samples
/proc/PID/task/*/{status,stat} over WINDOW s (default 3) from 2 s after the start; requests
in the window = its length / the run's µs per request. Threads under 0.02 switches per
request are left out. docs/benchmarks-transport.md, "The loop off the leader's sockets".
  python3 bench/transport/thread_switches.py build --auth=none --caller_leads=true"""
import glob, os, re, subprocess, sys, time

if len(sys.argv) < 2:
    sys.exit(__doc__)
B, args = sys.argv[1], sys.argv[2:]
it, win = os.environ.get("IT", "100000"), float(os.environ.get("WINDOW", "3"))
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
bench = [f"{B}/bench/ps/ps_bench", "--bytes=4096", f"--iters={it}"]
out = subprocess.PIPE
if args[:1] == ["raw2"]:
    ep = "tcp://127.0.0.1:" + os.environ.get("PORT", "5595")
    echo = subprocess.Popen(bench + ["--bench_mode=baseline", f"--echo_bind={ep}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    main = subprocess.Popen(bench + ["--bench_mode=baseline", f"--echo_connect={ep}"], stdout=out,
                            stderr=subprocess.DEVNULL, text=True)
    procs, waits = {"echo": echo.pid, "client": main.pid}, [echo]
else:
    main = subprocess.Popen([f"{B}/launch/tessera", "launch", "--servers", "1", "--workers", "1", "--program"] +
                            bench[:1] + ["--", "--sync=asp", "--shm=off", "--bench_mode=dense"] + bench[1:] + args,
                            stdout=out, stderr=subprocess.STDOUT, env=env, text=True)
    procs, waits = {}, []
    for _ in range(50):  # the launcher's children by TESSERA_RANK: 1 the server, 2 the worker
        time.sleep(0.1)
        for c in open(f"/proc/{main.pid}/task/{main.pid}/children").read().split():
            try:
                for kv in open(f"/proc/{c}/environ", "rb").read().split(b"\0"):
                    if kv in (b"TESSERA_RANK=1", b"TESSERA_RANK=2"):
                        procs["server" if kv.endswith(b"1") else "worker"] = int(c)
            except OSError:
                pass
        if len(procs) == 2:
            break
time.sleep(2)
hz = os.sysconf("SC_CLK_TCK")


def snap():
    s = {}
    for name, pid in procs.items():
        for t in glob.glob(f"/proc/{pid}/task/*"):
            try:
                comm, st = open(t + "/comm").read().strip(), open(t + "/status").read()
                stat = open(t + "/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            v = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", st, re.M).group(1))
            iv = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", st, re.M).group(1))
            s[(name, t)] = (comm, v, iv, (int(stat[11]) + int(stat[12])) / hz)
    return s


a = snap()
t0 = time.time()
time.sleep(win)
b = snap()
t1 = time.time()
text = main.communicate()[0]
for w in waits:
    w.wait()
us = float(re.search(r"us_per_iter=([0-9.]+)", text).group(1))
n = (t1 - t0) * 1e6 / us
print(f"us={us} {' '.join(args)}")
for k in sorted(b):
    if k not in a:
        continue
    (comm, v, iv, cpu), (_, v0, iv0, cpu0) = b[k], a[k]
    if (v - v0 + iv - iv0) / n >= 0.02:
        print(f"  {k[0]:6s} {comm:16s} voluntary={(v - v0) / n:.2f} involuntary={(iv - iv0) / n:.2f} "
              f"cpu_us={(cpu - cpu0) * 1e6 / n:.1f}")
