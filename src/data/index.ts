// Public API of edgefit's data layer: the two real datasets (SPEC.md), batching, and .npy files.
export type { Split, RawSplit, DroppedRow } from './types.js';
export { SPLITS } from './types.js';
export { type Dataset, type DatasetName, type LoadOptions, DATASET_NAMES, PIXEL_SCALE } from './dataset.js';
export { loadDataset, subset, take, scalePixels, isDatasetName } from './dataset.js';
export { type Batch, type BatchOptions, type BatchSource } from './batch.js';
export { batches, numBatches, epochOrder, permutation, mulberry32, mixSeed } from './batch.js';
export {
  type NpyArray,
  type NpyInput,
  type NpyData,
  type NpyDType,
  NPY_DTYPES,
  readNpy,
  writeNpy,
  parseNpy,
  encodeNpy,
} from './npy.js';
export {
  type IdxFile,
  type IdxImages,
  type IdxLabels,
  readIdx,
  readIdxImages,
  readIdxLabels,
  parseIdx,
} from './idx.js';
export { loadMnistRaw, readMnistSplit, mnistDataDir, MNIST_NUM_CLASSES } from './mnist.js';
export {
  type FashionRaw,
  FASHION_MNIST_CLASSES,
  FASHION_NUM_CLASSES,
  FASHION_TEST_PER_CLASS,
  loadFashionRaw,
  loadFashionSplit,
  readFashion,
  fashionDataDir,
} from './fashion.js';
// Bring-your-own data: one DataSource interface over built-in datasets, image folders, .npy/.npz, CSV, manifests.
export {
  type DataSource,
  type DataBatch,
  type DataFormat,
  type InputSpec,
  type ModelIO,
  type SkippedItem,
  type SourceBatchOptions,
  type TensorSpec,
  BaseSource,
  MemorySource,
  isDataSource,
  modelIO,
  modelClasses,
  fitItemShape,
  takeFeeds,
} from './source.js';
export { openData, fromDataset, DATA_FORMATS_HELP, type OpenDataOptions } from './open.js';
export {
  type PreprocessSpec,
  type PreprocessOverrides,
  type Layout,
  PREPROCESS_KEYS,
  parsePreprocessBlock,
  parseCrop,
  parseNumberList,
  resolvePreprocess,
} from './preprocess.js';
export {
  ImageFolderSource,
  listImageFolder,
  decodeImage,
  IMAGE_EXTENSIONS,
  type ImageListing,
} from './images.js';
export { encodePng, decodePng, type DecodedImage } from './png.js';
export { openNpy, openNpz, readNpz, writeNpz, encodeNpz, NpzFile, type ArrayReader } from './npz.js';
export { readCsv, type CsvData } from './csv.js';
export { readManifest, type Manifest } from './manifest.js';
export { materialize, MAX_IN_MEMORY_BYTES } from './materialize.js';
export { splitValidation, defaultValRows, sampleFeeds, feedRows, type FeedBatch } from './split.js';
