import sys, time, statistics, torch, torch.nn.functional as F
t = int(sys.argv[1]); secs = float(sys.argv[2]) if len(sys.argv) > 2 else 3
torch.set_num_threads(t)
n,c,h,w = 32,64,56,56
x = (torch.rand(n,c,h,w)*2-1).contiguous(memory_format=torch.channels_last).requires_grad_(True)
wt = torch.ones(c, requires_grad=True); b = torch.zeros(c, requires_grad=True)
y = F.instance_norm(x, weight=wt, bias=b, eps=1e-5)
print("y channels_last", y.is_contiguous(memory_format=torch.channels_last), "grad_fn", y.grad_fn, file=sys.stderr)
dy = torch.rand(y.shape)*2-1
dy = dy.contiguous(memory_format=torch.channels_last) if y.is_contiguous(memory_format=torch.channels_last) else dy.contiguous()
run = lambda: torch.autograd.grad(y, [x, wt, b], dy, retain_graph=True)
g = run(); print("dx channels_last", g[0].is_contiguous(memory_format=torch.channels_last), file=sys.stderr)
for _ in range(20): run()
s=[]; st=time.perf_counter()
while time.perf_counter()-st < secs:
    t0=time.perf_counter(); run(); s.append(time.perf_counter()-t0)
print(f"torch t{t} median {statistics.median(s)*1e3:.3f} ms min {min(s)*1e3:.3f} n {len(s)}")
