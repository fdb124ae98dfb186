import csv, glob, statistics, re, collections, sys
OUT = sys.argv[1] if len(sys.argv) > 1 else '/tmp/innhwc/pa'
data = collections.defaultdict(lambda: collections.defaultdict(dict))  # case -> tool -> round -> ms
for f in glob.glob(OUT + '/r*-*.csv'):
    m = re.match(r'r(\d+)-(.+)-(in|gn)\.csv', f.split('/')[-1])
    r, tool = int(m.group(1)), m.group(2)
    for row in csv.DictReader(open(f)):
        case = f"{row['op']} {row['direction']} {row['layout']} {row['N']}x{row['C']}x{row['H']}x{row['W']} t{row['threads']}"
        data[case][tool][r] = float(row['median_ms'])
tools = ['ours', 'ours-always', 'ours-never', 'torch', 'torch-recycling']
print('| case | ' + ' | '.join(tools) + ' | ours / best torch, median of per-round ratios (≥1: ours ahead) | rounds ahead |')
print('|---|' + '---:|' * (len(tools) + 2))
for case in sorted(data):
    d = data[case]
    rounds = sorted(d['ours'])
    med = {t: statistics.median(d[t].values()) for t in tools if d[t]}
    ratios = [min(d['torch'][r], d['torch-recycling'][r]) / d['ours'][r] for r in rounds]
    print(f"| {case} | " + ' | '.join(f"{med[t]:.3f}" for t in tools) +
          f" | {statistics.median(ratios):.2f}× | {sum(x >= 1 for x in ratios)}/{len(ratios)} |")
