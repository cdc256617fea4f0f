export PYTHONPATH=src:tests
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
GPU_REPORT=$OUT/gpu.jsonl timeout 200 python3 -m pytest -q -m gpu tests/runtime/test_gpu.py -x -p no:cacheprovider 2>&1 | tail -3
timeout 200 python3 -m stgcn_rt.cli bench --out /tmp/bench --backends eager --batch 1 --cameras 384,512,768 --iterations 20 --seconds 3 --name bench-h100-2026-11-25-cameras-optimized > /tmp/c.log 2>&1
grep -A8 "## Cameras" /tmp/c.log; cp /tmp/bench/*.json /tmp/bench/*.md $OUT/ 2>/dev/null
