#!/usr/bin/env node
// Drives the browser test of govtrust-verifier-wasm (Node 20, built-ins only).
//
//   node wasm/web/run.mjs --pkg DIR --vectors FILE [--chromium PATH]
//                         [--timeout SECS] [--json OUT] [--screenshot PNG]
//
// Serves wasm/web/ (the test page), the wasm-bindgen package (--pkg, at
// /pkg/) and the vectors (at /vectors.json) on 127.0.0.1 only, starts
// headless Chromium on the page with a fresh profile, and waits for the
// page to POST its report to /results. Prints every verdict, the package
// size (.wasm bytes and gzip -9) and the in-page timing; exits 1 on any
// wrong verdict, a page error or a timeout.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const args = Object.create(null);
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i];
  if (!k.startsWith("--") || i + 1 >= process.argv.length) {
    console.error(`usage: run.mjs --pkg DIR --vectors FILE [--chromium PATH] [--timeout SECS] [--json OUT] [--screenshot PNG]`);
    process.exit(2);
  }
  args[k.slice(2)] = process.argv[i + 1];
}
const webDir = dirname(fileURLToPath(import.meta.url));
const pkgDir = resolve(args.pkg ?? "");
const vectorsFile = resolve(args.vectors ?? "");
const chromium = args.chromium ?? "/usr/bin/chromium";
const timeoutSecs = Number(args.timeout ?? 180);
const wasmFile = join(pkgDir, "govtrust_verifier_wasm_bg.wasm");
for (const f of [wasmFile, vectorsFile, chromium]) {
  if (!existsSync(f)) {
    console.error(`run.mjs: ${f} not found`);
    process.exit(2);
  }
}

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
};

/** Maps a URL path to a file under root, refusing anything outside it. */
function under(root, rel) {
  const p = normalize(join(root, rel));
  return p.startsWith(root + "/") ? p : null;
}

let settle;
const report = new Promise((res) => (settle = res));

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  if (req.method === "POST" && url.pathname === "/results") {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      res.end("ok");
      try {
        settle(JSON.parse(body));
      } catch (e) {
        settle({ fatal: `unparsable report: ${e}` });
      }
    });
    return;
  }
  let file = null;
  if (url.pathname === "/" || url.pathname === "/index.html") file = join(webDir, "index.html");
  else if (url.pathname === "/test.js") file = join(webDir, "test.js");
  else if (url.pathname === "/vectors.json") file = vectorsFile;
  else if (url.pathname.startsWith("/pkg/")) file = under(pkgDir, url.pathname.slice(5));
  if (!file || !existsSync(file) || !statSync(file).isFile()) {
    res.statusCode = 404;
    res.end("not found");
    return;
  }
  res.setHeader("content-type", types[extname(file)] ?? "application/octet-stream");
  res.setHeader("cache-control", "no-store");
  res.end(readFileSync(file));
});

await new Promise((res) => server.listen(0, "127.0.0.1", res));
const port = server.address().port;
const pageUrl = `http://127.0.0.1:${port}/`;

const profile = mkdtempSync(join(tmpdir(), "govtrust-web-test-"));
const browser = spawn(
  chromium,
  [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    `--user-data-dir=${profile}`,
    pageUrl,
  ],
  { detached: true, stdio: ["ignore", "ignore", "pipe"] },
);
let browserLog = "";
browser.stderr.on("data", (d) => {
  browserLog = (browserLog + d).slice(-8000);
});
const exited = new Promise((res) => browser.on("exit", (code, sig) => res({ fatal: `chromium exited early (${code ?? sig})` })));
const timer = new Promise((res) =>
  setTimeout(() => res({ fatal: `no report from the page within ${timeoutSecs} s` }), timeoutSecs * 1000),
);

const result = await Promise.race([report, exited, timer]);

// Optional screenshot of the finished page, by a second headless run
// (--virtual-time-budget freezes performance.now() there, so its timing
// panel reads 0: the figures printed come from the first run).
async function screenshot(png) {
  const shotProfile = mkdtempSync(join(tmpdir(), "govtrust-web-shot-"));
  const shot = spawn(
    chromium,
    ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     `--user-data-dir=${shotProfile}`, "--window-size=1100,1100", "--virtual-time-budget=20000",
     `--screenshot=${resolve(png)}`, pageUrl],
    { stdio: "ignore" },
  );
  await new Promise((res) => shot.on("exit", res));
  rmSync(shotProfile, { recursive: true, force: true });
}

// Stop the browser (its own process group, which we started) and clean up.
try {
  process.kill(-browser.pid, "SIGTERM");
} catch (_) {}
await new Promise((res) => setTimeout(res, 300));
try {
  process.kill(-browser.pid, "SIGKILL");
} catch (_) {}
if (args.screenshot && !result.fatal) await screenshot(args.screenshot);
server.close();
rmSync(profile, { recursive: true, force: true });

if (result.fatal) {
  console.error(`web-test: FAILED: ${result.fatal}`);
  console.error(`chromium stderr (tail):\n${browserLog}`);
  process.exit(1);
}

const wasm = readFileSync(wasmFile);
const glue = readFileSync(join(pkgDir, "govtrust_verifier_wasm.js"));
const size = {
  wasmBytes: wasm.length,
  wasmGzipBytes: gzipSync(wasm, { level: 9 }).length,
  jsGlueBytes: glue.length,
  jsGlueGzipBytes: gzipSync(glue, { level: 9 }).length,
};

console.log(`web-test: verdicts in ${result.timing.userAgent.match(/(Headless)?Chrom\w*\/[\d.]+/)?.[0] ?? "Chromium"}`);
for (const r of result.rows) {
  const mark = r.ok ? "ok   " : "WRONG";
  console.log(`  ${mark} ${r.name.padEnd(58)} expected ${r.expected.padEnd(16)} Verifier ${r.verifier.padEnd(16)} one-shot ${r.oneShot}`);
  for (const p of r.problems) console.log(`        ${p}`);
}
const t = result.timing;
const kib = (b) => (b / 1024).toFixed(1);
console.log(
  `web-test: package ${basename(wasmFile)} ${size.wasmBytes} bytes (${kib(size.wasmBytes)} KiB), gzip -9 ${size.wasmGzipBytes} bytes (${kib(size.wasmGzipBytes)} KiB); JS glue ${size.jsGlueBytes} bytes (gzip ${size.jsGlueGzipBytes})`,
);
console.log(
  `web-test: timing (median of ${t.rounds} rounds x ${t.callsPerRound} calls): kept Verifier ${t.usPerVerify.toFixed(1)} us/verify ` +
    `(content object ${t.usPerVerifyObjectContent.toFixed(1)}); one-shot ${t.usPerOneShot.toFixed(1)} us/verify; ` +
    `baseline WebCrypto ECDSA P-256 verify ${t.usPerWebCryptoVerify.toFixed(1)} us/call; ratio ${t.ratioToWebCrypto.toFixed(2)}x`,
);
const best = (xs) => Math.min(...xs).toFixed(1);
console.log(
  `web-test: best round: kept Verifier ${best(t.roundsUs.kept)} us/verify; one-shot ${best(t.roundsUs.oneShot)}; WebCrypto ${best(t.roundsUs.webcrypto)} us/call`,
);
console.log(
  `web-test: init ${t.initMs.toFixed(1)} ms, new Verifier ${t.constructMs.toFixed(2)} ms, first verify on a fresh Verifier ${t.firstVerifyUs.toFixed(0)} us`,
);
if (args.json) writeFileSync(args.json, JSON.stringify({ ...result, size }, null, 2));
const total = result.rows.length;
console.log(`web-test: ${total - result.failed} passed, ${result.failed} failed`);
process.exit(result.failed === 0 ? 0 : 1);
