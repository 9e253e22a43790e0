import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromiumMissing, launchChromium } from '../testing/chromium.js';
import { MANIFEST_SCHEMA, type Manifest, type ModelFigures } from './manifest.js';
import { chartPoints, renderReport } from './report.js';

function figures(bytes: number, accuracy: number, recall6: number): ModelFigures {
  return {
    digest: 'd'.repeat(64),
    bytes,
    params: bytes / 4,
    accuracy,
    perClassRecall: Array.from({ length: 10 }, (_, c) => (c === 6 ? recall6 : 0.9)),
    slices: { shirt: recall6 },
    latencyMs: 0.1,
    peakMemoryBytes: bytes * 2,
  };
}

function sampleManifest(): Manifest {
  const stage = (index: number, name: string, bytes: number, accuracy: number) => ({
    index,
    name,
    technique: name,
    parameters: {},
    seconds: 1 + index,
    cached: index === 0,
    key: String(index),
    after: { digest: 'e'.repeat(64), bytes, params: bytes / 4, accuracy },
    report:
      index === 2 ? { detail: { sensitivity: [{ node: 'conv2', sqnrDb: 31.5, accuracyDrop: 0.001 }] } } : {},
  });
  return {
    schema: MANIFEST_SCHEMA,
    tool: { name: 'edgefit', version: '0.1.0' },
    name: 'fashion-cnn',
    device: 'retail-box',
    config: { file: 'edgefit.yaml', sha256: 'a'.repeat(64), content: {} },
    source: { model: 'baseline.onnx', digest: 'b'.repeat(64) },
    evaluation: { data: 'fashion-mnist', split: 'test', n: 10000, classes: 10 },
    slices: { shirt: { class: 6 } },
    baseline: figures(1_690_000, 0.91, 0.7),
    stages: [
      stage(0, 'optimize', 1_680_000, 0.91),
      stage(1, 'prune', 500_000, 0.905),
      stage(2, 'quantize', 130_000, 0.903),
    ],
    candidate: figures(130_000, 0.903, 0.69),
    deployed: { ...figures(431_000, 0.9, 0.68), version: 3 },
    compressionRatio: 1_690_000 / 130_000,
    gates: [
      {
        name: 'max-drop',
        passed: true,
        value: 0.7,
        limit: 1,
        message: 'accuracy drop 0.70 points from 91.00 % (at most 1 points)',
      },
      {
        name: 'max-recall-drop:shirt',
        passed: false,
        value: 2.5,
        limit: 2,
        message: 'recall of class shirt dropped 2.50 points (at most 2)',
      },
    ],
    promoted: false,
    registry: null,
    startedAt: '2026-12-05T00:00:00.000Z',
    finishedAt: '2026-12-05T00:01:00.000Z',
    seconds: 60,
  };
}

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgefit-report-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('pipeline report', () => {
  test('chart points: baseline, each stage, the deployed version', () => {
    const pts = chartPoints(sampleManifest());
    assert.deepEqual(
      pts.map((p) => `${p.kind}:${p.label}:${p.bytes}:${p.accuracy}`),
      [
        'baseline:baseline:1690000:0.91',
        'stage:1. optimize:1680000:0.91',
        'stage:2. prune:500000:0.905',
        'candidate:3. quantize:130000:0.903',
        'deployed:deployed v3:431000:0.9',
      ],
    );
  });

  test('renders in headless Chromium: the chart has the expected points, the failed slice gate shows, a screenshot is taken', async (t) => {
    const why = chromiumMissing();
    if (why) return t.skip(why);
    const m = sampleManifest();
    const file = join(dir, 'report.html');
    writeFileSync(file, renderReport(m));
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith('file:')) external.push(r.url());
      });
      await page.goto(pathToFileURL(file).href);
      const points = await page.$$eval('#size-accuracy g.point', (gs) =>
        gs.map((g) => ({
          label: g.getAttribute('data-label'),
          bytes: Number(g.getAttribute('data-bytes')),
          accuracy: Number(g.getAttribute('data-accuracy')),
          cx: Number(g.querySelector('circle')!.getAttribute('cx')),
          cy: Number(g.querySelector('circle')!.getAttribute('cy')),
          visible: (g.querySelector('circle') as any).getBoundingClientRect().width > 0,
        })),
      );
      assert.equal(points.length, 5);
      assert.deepEqual(
        points.map((p) => p.label),
        ['baseline', '1. optimize', '2. prune', '3. quantize', 'deployed v3'],
      );
      assert.ok(points.every((p) => p.visible));
      // Smaller models sit further left; more accurate ones higher up.
      const byLabel = Object.fromEntries(points.map((p) => [p.label, p]));
      assert.ok(byLabel['3. quantize']!.cx < byLabel['2. prune']!.cx);
      assert.ok(byLabel['2. prune']!.cx < byLabel['baseline']!.cx);
      assert.ok(byLabel['baseline']!.cy < byLabel['deployed v3']!.cy);
      const failed = await page.$$eval('#gates tr.fail', (rows) =>
        rows.map((r) => r.getAttribute('data-gate')),
      );
      assert.deepEqual(failed, ['max-recall-drop:shirt']);
      assert.equal(await page.textContent('#verdict'), 'not promoted: a gate failed');
      const sliceRow = await page.$$eval('#recall tr.slice', (rows) =>
        rows.map((r) => r.getAttribute('data-class')),
      );
      assert.deepEqual(sliceRow, ['6']);
      assert.equal(await page.$$eval('#sensitivity tbody tr', (r) => r.length), 1);
      const shot = join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(statSync(shot).size > 20_000, String(statSync(shot).size));
      assert.deepEqual(external, []);
    } finally {
      await browser.close();
    }
  });
});
