#!/usr/bin/env bash
# Every measurement in docs/benchmarks.md, one torch thread each. The CIFAR-10 subset's path is
# the first argument (a folder or .zip, as data.root of a spec).
set -euo pipefail
data_root=${1:?usage: bench/run_all.sh CIFAR10_DATA_ROOT}
harness=.venv/bin/harness
python=.venv/bin/python
mkdir -p bench/results

$harness bench --task cifar10 --setting A --data-root "$data_root" \
    --task-option eval_reference_samples=2000 --batch-size 64 --steps 1 --repeats 3 --warmup 1 \
    --threads 1 --methods simgd,conopt,jare --json > bench/results/cifar10-A-cpu.json
$harness bench --task mog --setting r2 --batch-size 64 --steps 10 --repeats 5 --warmup 2 --threads 1 \
    --methods simgd,conopt,gen_only,disc_only,jare,sngan --json > bench/results/mog-r2-cpu.json
$python bench/toy_throughput.py --setting gaussian/default > bench/results/toy-gaussian.json
$python bench/overhead.py --setting mog/r2 --method jare --steps 1000 --eval-every 500 \
    > bench/results/overhead-mog-jare.json
$python bench/toy_throughput.py --setting mog/r2 --steps 100 --eval-every 50 --unbatched-limit 10 > bench/results/toy-mog.json
$harness bench --task cifar10 --setting A --data-root "$data_root" \
    --task-option eval_reference_samples=2000 --batch-size 64 --steps 1 --repeats 3 --warmup 1 \
    --threads 1 --methods simgd,gen_only,disc_only,sngan --json > bench/results/cifar10-A-cpu-one-sided.json
