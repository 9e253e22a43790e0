// Classification metrics from a confusion matrix (rows: true class, columns: predicted class).

export interface ClassMetrics {
  class: number;
  name?: string;
  precision: number;
  recall: number;
  f1: number;
  /** Rows whose true class is this one. */
  support: number;
}

export class Confusion {
  readonly k: number;
  /** k*k counts, row = true class, column = predicted class. */
  readonly counts: Float64Array;
  constructor(k: number) {
    this.k = k;
    this.counts = new Float64Array(k * k);
  }
  add(truth: number, pred: number): void {
    this.counts[truth * this.k + pred]!++;
  }
  get n(): number {
    let s = 0;
    for (const c of this.counts) s += c;
    return s;
  }
  get correct(): number {
    let s = 0;
    for (let i = 0; i < this.k; i++) s += this.counts[i * this.k + i]!;
    return s;
  }
  get accuracy(): number {
    const n = this.n;
    return n ? this.correct / n : 0;
  }
  matrix(): number[][] {
    return Array.from({ length: this.k }, (_, i) =>
      Array.from(this.counts.subarray(i * this.k, (i + 1) * this.k)),
    );
  }
  /** Precision, recall and F1 per class; 0 where undefined (no predictions or no rows of that class). */
  perClass(names?: readonly string[]): ClassMetrics[] {
    const k = this.k;
    const out: ClassMetrics[] = [];
    for (let c = 0; c < k; c++) {
      let predicted = 0;
      let actual = 0;
      for (let j = 0; j < k; j++) {
        predicted += this.counts[j * k + c]!;
        actual += this.counts[c * k + j]!;
      }
      const tp = this.counts[c * k + c]!;
      const precision = predicted ? tp / predicted : 0;
      const recall = actual ? tp / actual : 0;
      const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
      const m: ClassMetrics = { class: c, precision, recall, f1, support: actual };
      if (names?.[c] !== undefined) m.name = names[c];
      out.push(m);
    }
    return out;
  }
}
