/**
 * Base64 of bytes, using the built-in `Uint8Array.prototype.toBase64`
 * (TC39, shipped in Deno 2.x) so no dependency is needed.
 */
type WithBase64 = Uint8Array & { toBase64(): string };
type FromBase64 = { fromBase64(s: string): Uint8Array };

/** Standard base64 (with padding) of `bytes`. */
export function encodeBase64(bytes: Uint8Array): string {
  return (bytes as WithBase64).toBase64();
}

/** Decodes standard base64. */
export function decodeBase64(s: string): Uint8Array {
  return (Uint8Array as unknown as FromBase64).fromBase64(s);
}
