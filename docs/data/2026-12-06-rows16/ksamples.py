import sys, re
for f in sys.argv[1:]:
    tot = 0; parts = {}
    for line in open(f):
        m = re.match(r'\s*[\d.]+%\s+(\d+)\s+\[.\]\s+(\S+)', line)
        if not m: continue
        n, sym = int(m.group(1)), m.group(2)
        if sym.startswith('$s11NormKernels') or sym.startswith('nk_'):
            tot += n
            key = 'nk_hw' if sym.startswith('nk_') else ('rowBlock' if 'ShortRowsBackward' in sym else ('sweep' if 'ShiftedRowSums' in sym else 'other'))
            parts[key] = parts.get(key, 0) + n
    print(f.split('/')[-1].replace('.report',''), tot, parts)
