// Every op family; src/ops/registry.ts imports this before it hands out `lookup`, so the table is complete.
import './elementwise.js';
import './shape.js';
import './nn.js';
import './linalg.js';
import './reduce.js';
import './quant.js';
import './control.js';
