#!/bin/bash
uptime
for round in 1 2; do
for shape in "512 768" "128 4096" "16384 768" "2048 4096"; do
for k in 1 2; do
for v in test_rs t_v2 t_v2z; do echo -n "$v "; ./$v $shape $k | tail -1; done; done; done; done
uptime
