import csv,glob,os,sys,statistics,collections
folder=sys.argv[1]
d=collections.defaultdict(lambda: collections.defaultdict(dict))
for f in glob.glob(os.path.join(folder,'*-r*-*.csv')):
    side,r,_=os.path.basename(f)[:-4].split('-')
    for row in csv.DictReader(open(f)):
        k=(row['op'],row['dtype'],row['direction'],row['layout'],f"{row['N']}x{row['C']}x{row['H']}x{row['W']}",row['threads'])
        d[k][r][side]=(float(row['median_ms']),float(row['min_ms']))
for k in sorted(d):
    rs=[v for v in d[k].values() if 'base' in v and 'new' in v]
    med=[v['base'][0]/v['new'][0] for v in rs]; mn=[v['base'][1]/v['new'][1] for v in rs]
    bmin=min(v['base'][1] for v in rs); nmin=min(v['new'][1] for v in rs)
    print(' '.join(k), 'median-ratio %.2f'%statistics.median(med), 'min-ratio med %.2f [%s]'%(statistics.median(mn),' '.join('%.2f'%x for x in mn)), 'best base %.2f new %.2f -> %.2f'%(bmin,nmin,bmin/nmin))
