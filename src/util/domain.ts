// The one rule for ONNX's default domain: '' and 'ai.onnx' name the same one. Import-free (errors.ts and the CLI's
// start-up path use it); src/ir re-exports it.
/** The default ONNX domain: '' and 'ai.onnx' name the same one (a domain string, or a node's). */
export function isOnnxDomain(d: string | undefined | { readonly domain: string }): boolean {
  const domain = typeof d === 'object' ? d.domain : d;
  return !domain || domain === 'ai.onnx';
}

/** A domain in the form opset imports and the op registry key it by: '' for the default domain. */
export function normDomain(domain: string | undefined): string {
  return isOnnxDomain(domain) ? '' : domain!;
}
