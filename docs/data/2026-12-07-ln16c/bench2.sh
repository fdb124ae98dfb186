#!/bin/bash
uptime
for round in 1 2 3; do
for shape in "16384 768" "8192 1024" "2048 4096"; do
for k in 1 2; do
for v in a1 a4 b4; do echo -n "$v "; ./t_$v $shape $k | tail -1; done; done; done; done
uptime
