// Test and sample page for govtrust-verifier-wasm.
//
// Loads the package (./pkg, written by wasm-bindgen --target web) and the
// vectors (./vectors.json, written by wasm/vectors), runs every case
// through both APIs — a kept `Verifier` and the one-shot functions — and
// checks each verdict against the expected one; then times verification
// in this page with performance.now(): a kept Verifier, the one-shot
// function, and, as the baseline, one WebCrypto ECDSA P-256 verify (the
// leaf signature every attestation check must verify). Results are shown
// on the page and POSTed to /results for the driver (run.mjs).

import init, {
  Verifier,
  verifyDeviceAttestation,
  verifyElementX509Signature,
  verifyIdentityAttestation,
} from "./pkg/govtrust_verifier_wasm.js";

const ROUNDS = 5; // timing rounds; the median is reported
const N = 200; // verifies per round

const $ = (id) => document.getElementById(id);
const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

async function post(path, body) {
  try {
    await fetch(path, { method: "POST", body: JSON.stringify(body) });
  } catch (_) {
    // Opened without the driver: the page alone is the report.
  }
}

window.addEventListener("error", (e) => post("/results", { fatal: String(e.message) }));
window.addEventListener("unhandledrejection", (e) =>
  post("/results", { fatal: String(e.reason && (e.reason.stack || e.reason)) }),
);

/** Checks one result against the case's expectation; returns the problems. */
function check(c, r) {
  const bad = [];
  const want = c.expect;
  if (r === null || typeof r !== "object") return [`result is not an object: ${r}`];
  if (r.trusted !== want.trusted) bad.push(`trusted=${r.trusted}, want ${want.trusted}`);
  if (want.trusted) {
    if (r.trusted !== true) return bad.concat(`code ${r.code}: ${r.message}`);
    const eq = (k, v) => r[k] !== v && bad.push(`${k}=${JSON.stringify(r[k])}, want ${JSON.stringify(v)}`);
    eq("kind", c.kind);
    eq("userId", c.userId);
    eq("deviceId", c.deviceId);
    eq("key", c.key);
    eq("badge", want.badge);
    eq("serial", want.serial);
    eq("notAfter", want.notAfter);
    if (!r.authority || r.authority.id !== want.authorityId) bad.push(`authority.id=${r.authority && r.authority.id}`);
    if (typeof r.issuer !== "string" || typeof r.root !== "string") bad.push("issuer/root missing");
  } else {
    if (r.code !== want.code) bad.push(`code=${r.code} (${r.message}), want ${want.code}`);
    if (typeof r.message !== "string" || r.message.length === 0) bad.push("no message");
  }
  return bad;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** µs per call of a synchronous function, over N calls. */
function perCallSync(fn) {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) fn();
  return ((performance.now() - t0) * 1000) / N;
}

/** µs per call of an async function awaited one after the other. */
async function perCallAsync(fn) {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await fn();
  return ((performance.now() - t0) * 1000) / N;
}

async function main() {
  const t0 = performance.now();
  await init();
  const initMs = performance.now() - t0;
  const vectors = await (await fetch("./vectors.json")).json();
  const crls = vectors.crls.map(b64);
  const time = vectors.time; // seconds since the epoch
  const date = new Date(time * 1000);

  const t1 = performance.now();
  const verifier = new Verifier(vectors.rootPem, crls, null);
  const constructMs = performance.now() - t1;

  // Every case through a kept Verifier and through the one-shot function,
  // passing the content in each of its three accepted forms.
  const rows = [];
  const tbody = $("cases").querySelector("tbody");
  vectors.cases.forEach((c, i) => {
    const caseCrls = c.crls ? c.crls.map(b64) : crls;
    const kept = c.crls ? new Verifier(vectors.rootPem, caseCrls, null) : verifier;
    const forms = [c.content, JSON.stringify(c.content), new TextEncoder().encode(JSON.stringify(c.content))];
    const content = forms[i % 3];
    const json = JSON.stringify(c.content);
    let viaClass, viaFn;
    if (c.kind === "element_x509") {
      viaClass = kept.verifyElementX509(content, c.userId, date);
      viaFn = verifyElementX509Signature(vectors.rootPem, caseCrls, json, c.userId, time, null);
    } else if (c.deviceId !== undefined) {
      viaClass = kept.verifyDevice(content, c.userId, c.deviceId, c.key, date);
      viaFn = verifyDeviceAttestation(vectors.rootPem, caseCrls, json, c.userId, c.deviceId, c.key, time, null);
    } else {
      viaClass = kept.verifyIdentity(content, c.userId, c.key, date);
      viaFn = verifyIdentityAttestation(vectors.rootPem, caseCrls, json, c.userId, c.key, time, null);
    }
    if (kept !== verifier) kept.free();
    const problems = [...check(c, viaClass).map((p) => `Verifier: ${p}`), ...check(c, viaFn).map((p) => `one-shot: ${p}`)];
    if (JSON.stringify(viaClass) !== JSON.stringify(viaFn)) problems.push("the two APIs disagree");
    const show = (r) => (r.trusted ? "trusted" : r.code);
    rows.push({
      name: c.name,
      expected: c.expect.trusted ? "trusted" : c.expect.code,
      verifier: show(viaClass),
      oneShot: show(viaFn),
      ok: problems.length === 0,
      problems,
    });
    const tr = document.createElement("tr");
    for (const v of [c.name, rows.at(-1).expected, show(viaClass), show(viaFn)]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    td.textContent = problems.length ? "WRONG: " + problems.join("; ") : "ok";
    td.className = problems.length ? "bad" : "ok";
    tr.appendChild(td);
    tbody.appendChild(tr);
    if (i === 0) $("sample").textContent = JSON.stringify(viaClass, null, 2);
  });

  // Setup errors throw an Error carrying the verifier's code.
  let setupError = null;
  try {
    new Verifier("not a PEM certificate", [], null);
  } catch (e) {
    setupError = { isError: e instanceof Error, code: e.code, message: e.message };
  }
  const setupOk = setupError !== null && setupError.isError && typeof setupError.code === "string";
  rows.push({
    name: "bad root PEM throws",
    expected: "Error with code",
    verifier: setupError ? `${setupError.code}` : "no exception",
    oneShot: "-",
    ok: setupOk,
    problems: setupOk ? [] : [`constructor did not throw a coded Error: ${JSON.stringify(setupError)}`],
  });

  // Timing. The benchmark case is the valid device attestation.
  const bc = vectors.cases[vectors.bench.case];
  const bcJson = JSON.stringify(bc.content);
  let benchFailures = 0;
  const keptCall = () => {
    const r = verifier.verifyDevice(bcJson, bc.userId, bc.deviceId, bc.key, time);
    if (!r.trusted) benchFailures++;
  };
  const keptObjCall = () => {
    const r = verifier.verifyDevice(bc.content, bc.userId, bc.deviceId, bc.key, time);
    if (!r.trusted) benchFailures++;
  };
  const oneShotCall = () => {
    const r = verifyDeviceAttestation(vectors.rootPem, crls, bcJson, bc.userId, bc.deviceId, bc.key, time, null);
    if (!r.trusted) benchFailures++;
  };
  // A fresh Verifier's first call validates the issuing CA in full.
  const cold = new Verifier(vectors.rootPem, crls, null);
  const t2 = performance.now();
  cold.verifyDevice(bcJson, bc.userId, bc.deviceId, bc.key, time);
  const firstVerifyUs = (performance.now() - t2) * 1000;
  cold.free();

  const bl = vectors.baseline;
  const key = await crypto.subtle.importKey("spki", b64(bl.spki), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  const data = b64(bl.data);
  const sig = b64(bl.signature);
  const webcryptoCall = async () => {
    if (!(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, sig, data))) benchFailures++;
  };

  for (let i = 0; i < 20; i++) {
    keptCall();
    oneShotCall();
    await webcryptoCall();
  }
  const rounds = { kept: [], keptObject: [], oneShot: [], webcrypto: [] };
  for (let r = 0; r < ROUNDS; r++) {
    rounds.kept.push(perCallSync(keptCall));
    rounds.keptObject.push(perCallSync(keptObjCall));
    rounds.oneShot.push(perCallSync(oneShotCall));
    rounds.webcrypto.push(await perCallAsync(webcryptoCall));
  }
  const med = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, median(v)]));
  const timing = {
    rounds: ROUNDS,
    callsPerRound: N,
    initMs,
    constructMs,
    firstVerifyUs,
    usPerVerify: med.kept,
    usPerVerifyObjectContent: med.keptObject,
    usPerOneShot: med.oneShot,
    usPerWebCryptoVerify: med.webcrypto,
    ratioToWebCrypto: med.kept / med.webcrypto,
    roundsUs: rounds,
    benchFailures,
    userAgent: navigator.userAgent,
  };
  if (benchFailures)
    rows.push({ name: "benchmark verdicts", expected: "all trusted", verifier: `${benchFailures} failed`, oneShot: "-", ok: false, problems: ["a benchmark call did not verify"] });
  const f = (x) => x.toFixed(1);
  $("timing").textContent = [
    `init (compile + instantiate): ${f(initMs)} ms; new Verifier (root + 2 CRLs): ${f(constructMs)} ms`,
    `first verify on a fresh Verifier (full issuing-CA validation): ${f(firstVerifyUs)} µs`,
    `kept Verifier, JSON string content: ${f(med.kept)} µs/verify (median of ${ROUNDS} rounds × ${N})`,
    `kept Verifier, content object:      ${f(med.keptObject)} µs/verify`,
    `one-shot verifyDeviceAttestation:   ${f(med.oneShot)} µs/verify`,
    `baseline WebCrypto ECDSA P-256 verify (awaited): ${f(med.webcrypto)} µs/verify`,
    `kept Verifier / WebCrypto: ${med.kept / med.webcrypto >= 1 ? (med.kept / med.webcrypto).toFixed(2) : (med.kept / med.webcrypto).toFixed(3)}×`,
  ].join("\n");

  const failed = rows.filter((r) => !r.ok).length;
  $("status").textContent = failed ? `${failed} WRONG verdict(s)` : `all ${rows.length} verdicts right`;
  $("status").className = failed ? "bad" : "ok";
  const report = { rows, timing, failed };
  $("results").textContent = JSON.stringify(report);
  await post("/results", report);
}

main().catch((e) => post("/results", { fatal: String(e && (e.stack || e)) }));
