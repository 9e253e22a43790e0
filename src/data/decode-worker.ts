// A decoder worker thread: decodes lists of image files with decodeFiles() and sends the float rows back
// (transferring the buffer). Started by DecodePool through decode-worker.mjs.
import { parentPort, workerData } from 'node:worker_threads';
import { decodeFiles } from './images.js';
import type { PreprocessSpec } from './preprocess.js';

const { spec } = workerData as { spec: PreprocessSpec };
parentPort!.on('message', (m: { id: number; files: string[] }) => {
  decodeFiles(m.files, spec).then(
    (r) =>
      parentPort!.postMessage({ id: m.id, data: r.data, ok: r.ok, reasons: r.reasons }, [
        r.data.buffer as ArrayBuffer,
        r.ok.buffer as ArrayBuffer,
      ]),
    (e: Error) => {
      throw e; // an unexpected failure (not a bad image): the pool rejects every task
    },
  );
});
parentPort!.postMessage({ ready: true });
