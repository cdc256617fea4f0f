export PYTHONPATH=src
B="python3 -m stgcn_rt.cli --debug bench --out /tmp/bench"
timeout 330 $B --backends eager,graphs,compile-graphs,optimized-compile-graphs --batch 1,8,64,256,512 --cameras 256,1024,2048 --iterations 200 --seconds 2 --name bench-h100-2026-11-25-optimized > /tmp/m1.log 2>&1
grep -v Warn /tmp/m1.log | grep -v "step \[" | grep -v "^ *warnings.warn" | tail -12 | cut -c1-400
timeout 200 $B --backends optimized-graphs,optimized-serial-compile-graphs --batch 1,256,512 --cameras 1 --iterations 200 --seconds 2 --name bench-h100-2026-11-25-optimized-steps > /tmp/m2.log 2>&1
grep -v Warn /tmp/m2.log | grep -v "step \[" | grep -v "^ *warnings.warn" | tail -6 | cut -c1-300
cp /tmp/bench/*.json /tmp/bench/*.md $OUT/
