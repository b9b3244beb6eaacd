// How a TypeScript client uses the package; `scripts/web-test` type-checks
// this file against the generated .d.ts (tsc --strict --noEmit), so the
// published types stay usable.
import init, {
  Verifier,
  verifyIdentityAttestation,
  type Trusted,
  type VerifyResult,
} from "../../target/wasm/pkg/govtrust_verifier_wasm.js";

/** What a room member list shows next to a device. */
export function badgeFor(result: VerifyResult): string {
  if (result.trusted) {
    const t: Trusted = result;
    const until = new Date(t.notAfter * 1000).toISOString().slice(0, 10);
    return `✔ ${t.badge} (${t.authority.id}, until ${until})`;
  }
  // Narrowed to Untrusted: a stable code for logs, a message for humans.
  return `not verified (${result.code}): ${result.message}`;
}

export async function checkDevice(
  rootPem: string,
  crls: Uint8Array[],
  content: object,
  userId: string,
  deviceId: string,
  deviceKey: string,
): Promise<string> {
  await init();
  const verifier = new Verifier(rootPem, crls, { requireCrls: true });
  try {
    return badgeFor(verifier.verifyDevice(content, userId, deviceId, deviceKey, new Date()));
  } finally {
    verifier.free();
  }
}

export function checkIdentity(rootPem: string, crls: Uint8Array[], json: string, userId: string, masterKey: string): boolean {
  return verifyIdentityAttestation(rootPem, crls, json, userId, masterKey, null, null).trusted;
}
