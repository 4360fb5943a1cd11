/**
 * verifyTenant: placeholder replaced below.
 */
export async function verifyTenant() {
  throw new Error("verify is not available");
}
export function formatVerifyReport(r) {
  return JSON.stringify(r);
}
