// The SPEC benchmark model names, in a module that imports nothing (the CLI loads it at start-up).
export const MODEL_NAMES = ['mlp', 'cnn-s', 'vit-t'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];
