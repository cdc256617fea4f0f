"""Exploratory H100 timing of model variants (not part of the package)."""
import sys, time, json, copy, os
import numpy as np, torch
from stgcn_rt.model.checkpoint import make_demo_checkpoint, load_checkpoint
from stgcn_rt.model.fused import fuse_two_stream

only = set(sys.argv[1].split(",")) if len(sys.argv) > 1 else None
T0 = time.time()
torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
import tempfile
tmp = tempfile.mkdtemp()
path = os.path.join(tmp, "m.pt")
make_demo_checkpoint(path)
loaded = load_checkpoint(path)
base = loaded.model.eval()

def graphed(fn, x):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3): fn(x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = fn(x)
    return lambda: (g.replay(), out)[1]

def timeit(run, iters):
    for _ in range(10): run()
    torch.cuda.synchronize()
    lat = []
    for _ in range(iters):
        t = time.perf_counter(); run(); torch.cuda.synchronize(); lat.append(time.perf_counter() - t)
    lat = np.array(lat) * 1e3
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))

ref = {}
def check(name, out, key):
    p = torch.softmax(out.float(), 1)
    if key not in ref: ref[key] = p; return 0.0
    return float((p - ref[key]).abs().max())

def variant(name, build, batches, m=1, graphs=True):
    if only and name not in only: return
    for b in batches:
        torch.manual_seed(0)
        x32 = torch.rand(b, 3, 150, 33, m, device=dev)
        try:
            t = time.time()
            fn, dtype = build()
            x = x32.to(dtype)
            with torch.inference_mode():
                run = graphed(fn, x) if graphs else (lambda: fn(x))
                out = run(); torch.cuda.synchronize()
                diff = check(name, out, (b, m))
                setup = time.time() - t
                p50, p99 = timeit(run, 100 if b <= 8 else 30)
            print(json.dumps({"variant": name, "batch": b, "m": m, "p50_ms": round(p50, 4), "p99_ms": round(p99, 4),
                              "w_per_s": round(b / p50 * 1e3), "maxdiff": diff, "setup_s": round(setup, 1),
                              "t": round(time.time() - T0)}), flush=True)
        except Exception as e:
            print(json.dumps({"variant": name, "batch": b, "error": str(e)[:300]}), flush=True)
        torch.cuda.empty_cache()

def eager32():
    mdl = copy.deepcopy(base).to(dev)
    torch.backends.cudnn.allow_tf32 = False
    return mdl, torch.float32

def half(fused=False, cl=False, comp=None, bench=True):
    def build():
        torch.backends.cudnn.benchmark = bench
        mdl = fuse_two_stream(base) if fused else copy.deepcopy(base)
        mdl = mdl.to(dev, torch.float16).eval()
        if cl: mdl = mdl.to(memory_format=torch.channels_last)
        if comp: mdl = torch.compile(mdl, mode=comp, dynamic=False)
        return mdl, torch.float16
    return build

sys.path.insert(0, "lab")
from sparse_model import SparseTwoStream
def sparse(comp=None, mode="default"):
    def build():
        mdl = SparseTwoStream(base).to(dev).eval().half()
        if comp: mdl = torch.compile(mdl, mode=mode, dynamic=False)
        return mdl, torch.float32
    return build
B1, BT = [1], [256, 512]
variant("eager32", eager32, [1, 256], graphs=False)
variant("eager32_m5", eager32, [64], m=5, graphs=False)
variant("fc16", half(fused=True, comp="default"), B1 + BT)
variant("sp16", sparse(), B1 + BT)
variant("spc16", sparse(comp=True), B1 + [64] + BT)
variant("spc16_m5", sparse(comp=True), [64, 128], m=5)
variant("fc16_m5", half(fused=True, comp="default"), [64], m=5)
variant("g16_nobench", half(bench=False), B1 + BT)
variant("g16", half(), B1 + BT)
variant("fg16", half(fused=True), B1 + BT)
variant("fclg16", half(fused=True, cl=True), B1 + BT)
variant("c16", half(comp="default"), B1 + BT)
variant("fc16", half(fused=True, comp="default"), B1 + BT)
variant("fc16_m5", half(fused=True, comp="default"), [64, 128], m=5)
variant("c16_m5", half(comp="default"), [64, 128], m=5)
variant("fmax16", half(fused=True, comp="max-autotune-no-cudagraphs"), [1, 512])
print("done", round(time.time() - T0), flush=True)
