// Cross-checks civicflow's webhook signatures (X-Hub-Signature-256) with an independent
// implementation: the HMAC code of the @great-detail/whatsapp SDK (its webhook
// eventNotification(), which signs the body with the Web Crypto API).
//
// usage: node sign_check.mjs SIGN_TOOL FIXTURES_DIR
//   SIGN_TOOL: tests/whatsapp_sdk/sign_tool.cpp built ("sign FILE SECRET" prints our header,
//   "verify FILE SECRET HEADER" exits 0 when our signature_matches() accepts HEADER).
// For every fixture: the SDK's signature equals ours, the SDK accepts ours, we accept the
// SDK's, and both reject a tampered body and a wrong secret. Exits 1 on any failure.
import { execFileSync, spawnSync } from "node:child_process";
import { webcrypto } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// The SDK reaches the Web Crypto API through globalThis.crypto, a global from Node 19 on; on
// older Node the same standard object is exposed there (the SDK's code still does the HMAC).
if (!globalThis.crypto) {
    globalThis.crypto = webcrypto;
}
const { default: WhatsApp } = await import("@great-detail/whatsapp");

const [signTool, fixturesDir] = process.argv.slice(2);
if (!signTool || !fixturesDir) {
    console.error("usage: node sign_check.mjs SIGN_TOOL FIXTURES_DIR");
    process.exit(2);
}

const SECRET = "sdk-cross-check-secret";
const sdk = new WhatsApp();
const scratch = mkdtempSync(join(tmpdir(), "civicflow-sdk-"));
let passed = 0;
let failed = 0;

function oursSign(file, secret) {
    return execFileSync(signTool, ["sign", file, secret], { encoding: "utf8" }).trim();
}

// 0: accepted, 1: rejected (anything else is a tool error and fails the check).
function oursVerify(file, secret, header) {
    const r = spawnSync(signTool, ["verify", file, secret, header], { encoding: "utf8" });
    if (r.status !== 0 && r.status !== 1) {
        throw new Error(`sign tool failed (${r.status}): ${r.stderr}`);
    }
    return r.status === 0;
}

// The SDK's view of one webhook POST: its own signature of `body` and its verdict on `header`.
async function sdkCheck(body, header, secret) {
    const event = await sdk.webhook.eventNotification({
        method: "POST",
        headers: { "x-hub-signature-256": header },
        body,
    });
    return {
        signature: "sha256=" + (await event.signature.sha256.getCalculatedSignature(secret)),
        accepts: await event.checkSignature(secret),
    };
}

async function checkFixture(name) {
    const file = join(fixturesDir, name);
    const raw = readFileSync(file);
    const body = raw.toString("utf8");
    const problems = [];
    const expect = (ok, what) => {
        if (!ok) problems.push(what);
    };
    // The SDK hashes the UTF-8 encoding of the string it is given: it must be the file's bytes.
    expect(Buffer.from(body, "utf8").equals(raw), "the fixture is not valid UTF-8");

    const ours = oursSign(file, SECRET);
    const sdkView = await sdkCheck(body, ours, SECRET);
    expect(sdkView.signature === ours, `SDK signs ${sdkView.signature}, we sign ${ours}`);
    expect(sdkView.accepts, "the SDK rejects our signature");
    expect(oursVerify(file, SECRET, sdkView.signature), "we reject the SDK's signature");
    expect(!(await sdkCheck(body, ours, SECRET + "x")).accepts, "the SDK accepts a wrong secret");
    expect(!oursVerify(file, SECRET + "x", ours), "we accept a wrong secret");

    // A forged body under the original signature: one letter changed, still valid JSON.
    const tampered = body.replace("whatsapp_business_account", "Whatsapp_business_account");
    expect(tampered !== body, "the fixture has no object type to tamper with");
    const tamperedFile = join(scratch, name);
    writeFileSync(tamperedFile, tampered);
    const forged = await sdkCheck(tampered, ours, SECRET);
    expect(!forged.accepts, "the SDK accepts a tampered body");
    expect(!oursVerify(tamperedFile, SECRET, ours), "we accept a tampered body");
    expect(oursVerify(tamperedFile, SECRET, forged.signature), "we reject the SDK's signature of the tampered body");

    // Meta escapes '/' and non-ASCII; a re-serialized body is other bytes and must not verify.
    if (body.includes("\\u") || body.includes("\\/")) {
        const rewritten = JSON.stringify(JSON.parse(body));
        expect(rewritten !== body, "re-serializing an escaped body gave the same bytes");
        expect(!(await sdkCheck(rewritten, ours, SECRET)).accepts, "the SDK accepts a re-serialized body");
    }

    if (problems.length === 0) {
        passed++;
        console.log(`ok ${name} ${ours}`);
    } else {
        failed++;
        for (const p of problems) console.log(`not ok ${name}: ${p}`);
    }
}

try {
    const fixtures = readdirSync(fixturesDir).filter((f) => f.endsWith(".json")).sort();
    if (fixtures.length === 0) {
        console.log(`not ok: no fixtures in ${fixturesDir}`);
        failed++;
    }
    for (const name of fixtures) {
        try {
            await checkFixture(name);
        } catch (e) {
            failed++;
            console.log(`not ok ${name}: ${e.message}`);
        }
    }
} finally {
    rmSync(scratch, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
