#!/bin/bash
uptime
for round in 1 2; do
for shape in "16384 768" "8192 1024" "2048 4096" "512 768"; do
for k in 1 2; do
for R in 1 2 4; do echo -n "R$R "; ./test_rs_r$R $shape $k | tail -1; done; done; done; done
uptime
