/**
 * Minimal inline-SVG plots (no external assets): step/line plots and grouped bar charts.
 */
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));
}

/** about `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3))));

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  /** draw as a step function (best-so-far curves): default true. */
  step?: boolean;
  dashed?: boolean;
}

export interface PlotOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
  yMin?: number;
  yMax?: number;
  xMax?: number;
}

const MARGIN = { left: 56, right: 130, top: 28, bottom: 40 };
/** bar charts put rotated group labels under the axis. */
const BAR_MARGIN = { ...MARGIN, bottom: 96 };

function frame(w: number, h: number, o: PlotOptions, xTicks: number[], yTicks: number[], sx: (x: number) => number, sy: (y: number) => number, m = MARGIN): string[] {
  const parts: string[] = [];
  const x0 = m.left, x1 = w - m.right, y0 = h - m.bottom, y1 = m.top;
  parts.push(`<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#888"/>`);
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${x0 - 4}" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + 4}" stroke="#888"/><text x="${x}" y="${y0 + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  if (o.title) parts.push(`<text x="${(x0 + x1) / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(o.title)}</text>`);
  if (o.xLabel) parts.push(`<text x="${(x0 + x1) / 2}" y="${h - 6}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  if (o.yLabel) parts.push(`<text transform="translate(14 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  return parts;
}

function svg(w: number, h: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">${parts.join('')}</svg>`;
}

export function linePlot(series: readonly Series[], o: PlotOptions = {}): string {
  const w = o.width ?? 560, h = o.height ?? 300;
  const all = series.flatMap((s) => s.points);
  const xMax = o.xMax ?? Math.max(1e-9, ...all.map((p) => p[0]));
  const yMin = o.yMin ?? 0;
  const yMax = o.yMax ?? Math.max(yMin + 1e-9, ...all.map((p) => p[1])) * 1.05;
  const sx = (x: number) => MARGIN.left + (x / xMax) * (w - MARGIN.left - MARGIN.right);
  const sy = (y: number) => h - MARGIN.bottom - ((y - yMin) / (yMax - yMin)) * (h - MARGIN.top - MARGIN.bottom);
  const parts = frame(w, h, o, niceTicks(0, xMax), niceTicks(yMin, yMax), sx, sy);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    if (s.points.length === 0) return;
    const pts: string[] = [];
    s.points.forEach(([x, y], j) => {
      if (j > 0 && (s.step ?? true)) pts.push(`${sx(x).toFixed(1)},${sy(s.points[j - 1]![1]).toFixed(1)}`);
      pts.push(`${sx(x).toFixed(1)},${sy(y).toFixed(1)}`);
    });
    // extend best-so-far curves to the right edge
    const last = s.points[s.points.length - 1]!;
    if ((s.step ?? true) && last[0] < xMax) pts.push(`${sx(xMax).toFixed(1)},${sy(last[1]).toFixed(1)}`);
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8"${s.dashed ? ' stroke-dasharray="5 3"' : ''} points="${pts.join(' ')}"><title>${esc(s.name)}</title></polyline>`);
    const ly = MARGIN.top + 8 + i * 16;
    parts.push(`<line x1="${w - MARGIN.right + 8}" x2="${w - MARGIN.right + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/><text x="${w - MARGIN.right + 30}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  return svg(w, h, parts);
}

export interface BarGroup {
  label: string;
  values: readonly { name: string; value: number }[];
}

export function barPlot(groups: readonly BarGroup[], o: PlotOptions = {}): string {
  const M = BAR_MARGIN;
  const names = [...new Set(groups.flatMap((g) => g.values.map((v) => v.name)))];
  const w = o.width ?? Math.max(400, M.left + M.right + groups.length * (names.length * 12 + 16));
  const h = (o.height ?? 300) + BAR_MARGIN.bottom - MARGIN.bottom;
  const yMax = o.yMax ?? Math.max(1e-9, ...groups.flatMap((g) => g.values.map((v) => v.value))) * 1.05;
  const sy = (y: number) => h - M.bottom - (y / yMax) * (h - M.top - M.bottom);
  const plotW = w - M.left - M.right;
  const gw = plotW / Math.max(1, groups.length);
  const bw = Math.max(2, (gw - 8) / Math.max(1, names.length));
  const parts = frame(w, h, { ...o, xLabel: o.xLabel ?? '' }, [], niceTicks(0, yMax), () => 0, sy, M);
  groups.forEach((g, gi) => {
    const gx = M.left + gi * gw + 4;
    g.values.forEach((v) => {
      const k = names.indexOf(v.name);
      const y = sy(Math.max(0, v.value));
      parts.push(`<rect x="${(gx + k * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(h - M.bottom - y).toFixed(1)}" fill="${PALETTE[k % PALETTE.length]}"><title>${esc(`${g.label} / ${v.name}: ${fmt(v.value)}`)}</title></rect>`);
    });
    const cx = gx + (gw - 8) / 2;
    parts.push(`<text x="${cx.toFixed(1)}" y="${h - M.bottom + 12}" text-anchor="end" transform="rotate(-30 ${cx.toFixed(1)} ${h - M.bottom + 12})" font-size="9">${esc(g.label.length > 22 ? g.label.slice(0, 21) + '…' : g.label)}</text>`);
  });
  names.forEach((n, i) => {
    const ly = M.top + 8 + i * 16;
    parts.push(`<rect x="${w - M.right + 8}" y="${ly - 6}" width="14" height="10" fill="${PALETTE[i % PALETTE.length]}"/><text x="${w - M.right + 26}" y="${ly + 3}">${esc(n)}</text>`);
  });
  return svg(w, h, parts);
}
