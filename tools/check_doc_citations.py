#!/usr/bin/env python3
"""Every `PERFORMANCE.md, "Title"` / `PERFORMANCE-HISTORY.md, "Title"` citation in the
sources, tests, tools, README and docs must name the start of a heading in the cited
file (PERFORMANCE.md citations may also resolve in PERFORMANCE-HISTORY.md, reported).
Run from the repository root."""
import os, re, sys

def headings(path):
    hs, fence = [], False
    for l in open(path, encoding='utf-8'):
        if l.startswith('```'):
            fence = not fence
        elif not fence and re.match(r'^#{1,6} ', l):
            hs.append(re.sub(r'^#+\s*', '', l).strip())
    return hs

H = {'PERFORMANCE.md': headings('docs/PERFORMANCE.md'),
     'PERFORMANCE-HISTORY.md': headings('docs/PERFORMANCE-HISTORY.md')}

def matches(title, hs):
    t = title.strip().rstrip('.').replace('\u2026', '...')
    if '...' in t:  # an ellipsis stands for any text
        rx = '.*'.join(re.escape(p.strip()) for p in t.split('...'))
        return [h for h in hs if re.search(rx, h)]
    return [h for h in hs if h.startswith(t)]

files = []
for root in ['Sources', 'Tests', 'tools', 'Harness', 'docs']:
    for dp, dn, fn in os.walk(root):
        dn[:] = [d for d in dn if not d.startswith('.')]
        for f in fn:
            if f.endswith(('.swift', '.c', '.h', '.py', '.sh', '.md')):
                files.append(os.path.join(dp, f))
files.append('README.md')

cite = re.compile(r'(PERFORMANCE(?:-HISTORY)?\.md)`?\)?(?:\s|,|§|section|;)*"([^"]{3,200})"')
rcite = re.compile(r'"([^"]{3,200})"\s+in\s+`?(?:docs/)?(PERFORMANCE(?:-HISTORY)?\.md)')
bad = 0; total = 0
for path in sorted(files):
    if path in ('docs/PERFORMANCE.md', 'docs/PERFORMANCE-HISTORY.md', 'tools/check_doc_citations.py'):
        continue
    try:
        lines = open(path, encoding='utf-8').read().split('\n')
    except UnicodeDecodeError:
        continue
    # join comment continuations: strip leading comment markers, join with spaces
    text = ' '.join(re.sub(r'^\s*(///|//|#|\*|--)?\s?', '', l) for l in lines)
    text = re.sub(r'\s+', ' ', text)
    found = [(m.start(), m.group(1), m.group(2)) for m in cite.finditer(text)]
    found += [(m.start(), m.group(2), m.group(1)) for m in rcite.finditer(text)]
    for start, target, title in found:
        total += 1
        own = matches(title, H[target])
        other = matches(title, H['PERFORMANCE-HISTORY.md']) if target == 'PERFORMANCE.md' else []
        if own:
            status = 'ok  '
        elif other:
            status = 'HIST'
        else:
            status = 'MISS'; bad += 1
        where = (own or other or ['-'])[0]
        print(f'{status} {path}: {target} "{title}" -> "{where[:70]}"')
print(f'{total} citations, {bad} unresolved')

# Quoted titles inside docs/PERFORMANCE.md itself: each should start a heading of
# PERFORMANCE.md, PERFORMANCE-HISTORY.md or docs/*.md; others are listed for review.
other = sum((headings(os.path.join('docs', f)) for f in os.listdir('docs') if f.endswith('.md')), [])
txt = re.sub(r'\s+', ' ', open('docs/PERFORMANCE.md', encoding='utf-8').read())
seen = set()
for m in re.finditer(r'"([^"]{4,120})"', txt):
    q = m.group(1)
    if q in seen or not re.match(r'[A-Z0-9e]', q) or '--' in q or '=' in q:
        continue
    seen.add(q)
    if matches(q, H['PERFORMANCE.md']):
        where = 'PERFORMANCE.md'
    elif matches(q, H['PERFORMANCE-HISTORY.md']):
        where = 'PERFORMANCE-HISTORY.md'
    elif matches(q, other):
        where = 'docs/*.md'
    else:
        where = 'not a heading (review)'
    print(f'  internal "{q}" -> {where}')
sys.exit(1 if bad else 0)
