// Loads every op family so the registry is complete. Import `src/ops/index.ts` (or this file) once.
import './elementwise.js';
import './shape.js';
import './nn.js';
import './linalg.js';
import './reduce.js';
import './quant.js';
import './control.js';
