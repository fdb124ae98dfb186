cd /tmp/innhwc/mb; export OMP_NUM_THREADS=1
for i in 1 2; do ./mb 3 1 0 0 40; ./mb 0 1 0 0 40; ./mb 1 1 1 4 40; ./mb 1 1 2 4 40;  ./mb 1 1 0 4 40; ./mb 9 1 0 0 40; done
