// A sample image folder to try `--data ./my-images` with: PNGs of the Fashion-MNIST test split, one subfolder per
// class (named by class), N images each.
//   npx tsx scripts/sample-images.ts my-images [N]          (default 20 per class)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodePng, loadDataset } from '../src/data/index.js';

const [dir, perClassArg] = process.argv.slice(2);
if (!dir) {
  console.error('usage: npx tsx scripts/sample-images.ts <folder> [images per class]');
  process.exit(2);
}
const perClass = Number(perClassArg ?? 20);
const ds = loadDataset('fashion-mnist', 'test');
const names = ds.classNames ?? Array.from({ length: ds.numClasses }, (_, i) => String(i));
const counts = new Array<number>(ds.numClasses).fill(0);
for (let i = 0; i < ds.n && counts.some((c) => c < perClass); i++) {
  const c = Number(ds.y[i]);
  if (counts[c]! >= perClass) continue;
  const folder = join(dir, `${String(c).padStart(2, '0')}-${names[c]!.replace(/[^A-Za-z0-9]+/g, '-')}`);
  mkdirSync(folder, { recursive: true });
  const px = Uint8Array.from(ds.x.subarray(i * 784, (i + 1) * 784), (v) => Math.round(v * 255));
  writeFileSync(join(folder, `${String(counts[c]).padStart(4, '0')}.png`), encodePng(px, 28, 28, 1));
  counts[c]!++;
}
console.log(`${counts.reduce((a, b) => a + b, 0)} images in ${ds.numClasses} class folders under ${dir}`);
