// One self-contained HTML page per pipeline run (no scripts, no external files): a size-vs-accuracy chart of the
// baseline, every stage and the deployed model; per-class recall of baseline / candidate / deployed with the
// critical slices highlighted; per-layer sensitivity when a quantize stage measured it; the stage timeline; the
// gate verdicts. Chart points carry data-* attributes (label, bytes, accuracy) so tests can read them back.
import type { Manifest } from './manifest.js';

function esc(s: unknown): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function pct(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(digits)} %`;
}

function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

interface Point {
  label: string;
  kind: 'baseline' | 'stage' | 'candidate' | 'deployed';
  bytes: number;
  accuracy: number;
}

/** The chart's points: baseline, each stage's output, the deployed version. */
export function chartPoints(m: Manifest): Point[] {
  const pts: Point[] = [
    { label: 'baseline', kind: 'baseline', bytes: m.baseline.bytes, accuracy: m.baseline.accuracy },
  ];
  m.stages.forEach((s, i) =>
    pts.push({
      label: `${i + 1}. ${s.name}`,
      kind: i === m.stages.length - 1 ? 'candidate' : 'stage',
      bytes: s.after.bytes,
      accuracy: s.after.accuracy,
    }),
  );
  if (m.deployed)
    pts.push({
      label: `deployed v${m.deployed.version}`,
      kind: 'deployed',
      bytes: m.deployed.bytes,
      accuracy: m.deployed.accuracy,
    });
  return pts;
}

const COLORS: Record<Point['kind'], string> = {
  baseline: '#555',
  stage: '#2b7bb9',
  candidate: '#d9480f',
  deployed: '#2f9e44',
};

function chart(m: Manifest): string {
  const pts = chartPoints(m);
  const W = 640,
    H = 360,
    L = 70,
    R = 20,
    T = 20,
    B = 50;
  const lx = pts.map((p) => Math.log10(Math.max(1, p.bytes)));
  let x0 = Math.min(...lx),
    x1 = Math.max(...lx);
  if (x1 - x0 < 0.2) ((x0 -= 0.1), (x1 += 0.1));
  x0 -= 0.05 * (x1 - x0);
  x1 += 0.05 * (x1 - x0);
  const ys = pts.map((p) => p.accuracy * 100);
  let y0 = Math.min(...ys),
    y1 = Math.max(...ys);
  if (y1 - y0 < 1) ((y0 -= 0.5), (y1 += 0.5));
  const pad = 0.1 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  const sx = (v: number) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v: number) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const ticks: string[] = [];
  for (let e = Math.ceil(x0 * 2) / 2; e <= x1; e += 0.5) {
    const x = sx(e);
    ticks.push(
      `<line x1="${x}" y1="${H - B}" x2="${x}" y2="${T}" class="grid"/><text x="${x}" y="${H - B + 16}" text-anchor="middle">${esc(bytes(10 ** e))}</text>`,
    );
  }
  const ystep = (y1 - y0) / 5;
  for (let i = 0; i <= 5; i++) {
    const v = y0 + i * ystep;
    const y = sy(v);
    ticks.push(
      `<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" class="grid"/><text x="${L - 6}" y="${y + 4}" text-anchor="end">${v.toFixed(1)}</text>`,
    );
  }
  const path = pts
    .filter((p) => p.kind !== 'deployed')
    .map(
      (p, i) =>
        `${i ? 'L' : 'M'}${sx(Math.log10(Math.max(1, p.bytes))).toFixed(1)},${sy(p.accuracy * 100).toFixed(1)}`,
    )
    .join(' ');
  const placed: [number, number][] = [];
  const dots = pts
    .map((p) => {
      const x = sx(Math.log10(Math.max(1, p.bytes)));
      const y = sy(p.accuracy * 100);
      // Labels of points that (nearly) coincide are stacked instead of drawn over each other.
      const near = placed.filter(([px, py]) => Math.abs(px - x) < 60 && Math.abs(py - y) < 12).length;
      placed.push([x, y]);
      const ly = y - 8 + near * 13;
      return `<g class="point" data-label="${esc(p.label)}" data-kind="${p.kind}" data-bytes="${p.bytes}" data-accuracy="${p.accuracy}">
  <circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="6" fill="${COLORS[p.kind]}"><title>${esc(p.label)}: ${esc(bytes(p.bytes))}, ${esc(pct(p.accuracy))}</title></circle>
  <text x="${(x + 9).toFixed(1)}" y="${ly.toFixed(1)}">${esc(p.label)}</text></g>`;
    })
    .join('\n');
  return `<svg id="size-accuracy" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="size vs accuracy">
<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#ccc"/>
${ticks.join('\n')}
<path d="${path}" fill="none" stroke="#2b7bb9" stroke-dasharray="4 3"/>
${dots}
<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle" class="axis">model size (log scale)</text>
<text x="16" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(T + H - B) / 2})" class="axis">accuracy (%)</text>
</svg>`;
}

function recallTable(m: Manifest): string {
  const classes = m.baseline.perClassRecall.length;
  const slicesByClass = new Map<number, string[]>();
  for (const [name, s] of Object.entries(m.slices)) {
    const l = slicesByClass.get(s.class) ?? [];
    l.push(name);
    slicesByClass.set(s.class, l);
  }
  const rows: string[] = [];
  for (let c = 0; c < classes; c++) {
    const b = m.baseline.perClassRecall[c];
    const k = m.candidate.perClassRecall[c];
    const d = m.deployed?.perClassRecall[c];
    const names = slicesByClass.get(c);
    const drop = b !== undefined && k !== undefined ? (b - k) * 100 : null;
    rows.push(
      `<tr class="${names ? 'slice' : ''}" data-class="${c}"><td>${c}${names ? ` <b>${esc(names.join(', '))}</b>` : ''}</td><td>${pct(b)}</td><td>${pct(k)}</td><td>${m.deployed ? pct(d) : '–'}</td><td class="${drop !== null && drop > 0 ? 'neg' : ''}">${drop === null ? '–' : (-drop).toFixed(2)}</td></tr>`,
    );
  }
  return `<table id="recall"><thead><tr><th>class</th><th>baseline</th><th>candidate</th><th>deployed</th><th>Δ points</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function sensitivity(m: Manifest): string {
  const rows: string[] = [];
  for (const s of m.stages) {
    const layers = (s.report as any)?.detail?.sensitivity ?? (s.report as any)?.detail?.layers;
    if (!Array.isArray(layers)) continue;
    for (const l of layers)
      rows.push(
        `<tr><td>${esc(s.name)}</td><td>${esc(l.node ?? l.name)}</td><td>${l.sqnrDb !== undefined && l.sqnrDb !== null ? Number(l.sqnrDb).toFixed(1) : '–'}</td><td>${l.accuracyDrop !== undefined && l.accuracyDrop !== null ? (Number(l.accuracyDrop) * 100).toFixed(2) : '–'}</td></tr>`,
      );
  }
  if (rows.length === 0) return '<p>No stage measured per-layer sensitivity in this run.</p>';
  return `<table id="sensitivity"><thead><tr><th>stage</th><th>layer</th><th>SQNR (dB)</th><th>accuracy drop (points)</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function timeline(m: Manifest): string {
  const total = Math.max(
    1e-9,
    m.stages.reduce((a, s) => a + s.seconds, 0),
  );
  const bars = m.stages
    .map(
      (s) =>
        `<div class="bar" data-stage="${esc(s.name)}" style="width:${Math.max(0.5, (s.seconds / total) * 100).toFixed(2)}%" title="${esc(s.name)} ${s.seconds.toFixed(1)} s${s.cached ? ' (cached)' : ''}">${esc(s.name)} ${s.seconds.toFixed(1)} s${s.cached ? ' ♻' : ''}</div>`,
    )
    .join('');
  const rows = m.stages
    .map(
      (s) =>
        `<tr><td>${s.index + 1}</td><td>${esc(s.name)}</td><td>${esc(s.technique)}</td><td>${esc(JSON.stringify(s.parameters))}</td><td>${s.seconds.toFixed(2)} s${s.cached ? ' (cached)' : ''}</td><td>${bytes(s.after.bytes)}</td><td>${pct(s.after.accuracy)}</td></tr>`,
    )
    .join('');
  return `<div id="timeline" class="timeline">${bars}</div>
<table id="stages"><thead><tr><th>#</th><th>stage</th><th>technique</th><th>parameters</th><th>time</th><th>size after</th><th>accuracy after</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function gates(m: Manifest): string {
  const rows = m.gates
    .map(
      (g) =>
        `<tr class="${g.passed ? 'pass' : 'fail'}" data-gate="${esc(g.name)}" data-passed="${g.passed}"><td>${esc(g.name)}</td><td>${g.passed ? 'pass' : 'FAIL'}</td><td>${g.value === null ? '–' : esc(+g.value.toFixed(4))}</td><td>${esc(g.limit)}</td><td class="msg">${esc(g.message)}</td></tr>`,
    )
    .join('');
  return `<table id="gates"><thead><tr><th>gate</th><th>verdict</th><th>value</th><th>limit</th><th>what was measured</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The report page of one run. */
export function renderReport(m: Manifest): string {
  const verdict = m.promoted
    ? `promoted${m.registry?.version ? ` as v${m.registry.version}` : ''}`
    : m.gates.every((g) => g.passed)
      ? 'all gates passed (not promoted)'
      : 'not promoted: a gate failed';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgefit report — ${esc(m.name)} on ${esc(m.device)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child,td.msg{text-align:left}
tr.slice{background:#fff3bf}tr.fail td{background:#ffe3e3}tr.pass td:nth-child(2){color:#2f9e44}
td.neg{color:#c92a2a}.grid{stroke:#e5e5e5}svg text{font-size:11px}.axis{font-size:12px}
.timeline{display:flex;border:1px solid #ccc;height:26px;margin:8px 0}.bar{background:#d0ebff;border-right:1px solid #fff;font-size:11px;overflow:hidden;white-space:nowrap;padding:4px}
.summary td{text-align:left}
</style></head><body>
<h1>${esc(m.name)} on ${esc(m.device)}: <span id="verdict">${esc(verdict)}</span></h1>
<table class="summary"><tbody>
<tr><td>baseline</td><td>${bytes(m.baseline.bytes)}, ${pct(m.baseline.accuracy)}</td></tr>
<tr><td>candidate</td><td id="candidate">${bytes(m.candidate.bytes)}, ${pct(m.candidate.accuracy)} (${m.compressionRatio.toFixed(1)}× smaller)</td></tr>
<tr><td>deployed</td><td>${m.deployed ? `v${m.deployed.version}: ${bytes(m.deployed.bytes)}, ${pct(m.deployed.accuracy)}` : 'none'}</td></tr>
<tr><td>latency (batch 1)</td><td>${m.candidate.latencyMs === null ? '–' : `${m.candidate.latencyMs.toFixed(3)} ms`} (baseline ${m.baseline.latencyMs === null ? '–' : `${m.baseline.latencyMs.toFixed(3)} ms`})</td></tr>
<tr><td>evaluation</td><td>${esc(m.evaluation.data)}, ${m.evaluation.n} items, ${m.evaluation.classes} classes</td></tr>
<tr><td>run</td><td>${esc(m.startedAt)} — ${esc(m.finishedAt)} (${m.seconds.toFixed(1)} s), edgefit ${esc(m.tool.version)}, config sha256 ${esc(m.config.sha256.slice(0, 12))}</td></tr>
</tbody></table>
<h2>Size vs accuracy</h2>
${chart(m)}
<h2>Gates</h2>
${gates(m)}
<h2>Per-class recall</h2>
${recallTable(m)}
<h2>Stages</h2>
${timeline(m)}
<h2>Per-layer sensitivity</h2>
${sensitivity(m)}
</body></html>
`;
}
