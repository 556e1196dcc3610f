// decode.mjs greedy-decodes a GGUF model with llama.cpp (through
// node-llama-cpp's prebuilt CPU binaries, never building or downloading
// anything) and prints one JSON object on stdout:
//
//	{"model": FILE, "prompt": [ids], "tokens": [ids], "text": "...", "prompt_s": s,
//	 "generate_s": s, "tokens_per_s": t, "decode_tokens_per_s": t}
//
// Usage:
//
//	node decode.mjs --model FILE (--prompt-ids 1,2,3 | --prompt TEXT [--add-bos])
//	                [--tokens N] [--threads T] [--ctx C]
//	node decode.mjs --jobs [--threads T] < jobs.jsonl
//
// With --jobs, stdin holds one job per line, {"model": FILE, "prompt_ids":
// [...] or "prompt": TEXT, "add_bos": bool, "special": bool, "tokens": N},
// and stdout one result per line, so one process (one start of the runtime)
// runs them all. "special" parses special-token text in the prompt;
// "tokens": 0 only tokenizes.
//
// tokens_per_s is the generated tokens over the time from the start of the
// prompt's evaluation to the last token (prompt processing included), the
// measure `vlora-convert generate` prints; decode_tokens_per_s leaves the
// prompt and the first token out. End-of-generation tokens do not stop the
// decoding: exactly N tokens are generated.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { parseArgs } from "node:util";

const { values: a } = parseArgs({
    options: {
        model: { type: "string" },
        "prompt-ids": { type: "string" },
        prompt: { type: "string" },
        "add-bos": { type: "boolean", default: false },
        tokens: { type: "string", default: "32" },
        threads: { type: "string", default: "2" },
        ctx: { type: "string", default: "0" },
        jobs: { type: "boolean", default: false },
    },
});

function fail(msg) {
    process.stderr.write(`decode.mjs: ${msg}\n`);
    process.exit(2);
}

if (!a.jobs && !a.model) fail("--model is required");
if (!a.jobs && (a["prompt-ids"] == null) === (a.prompt == null)) fail("give one of --prompt-ids and --prompt");
const n = Number(a.tokens);
const threads = Number(a.threads);
if (!Number.isInteger(n) || n < 1) fail(`--tokens ${a.tokens} must be a positive integer`);
if (!Number.isInteger(threads) || threads < 1) fail(`--threads ${a.threads} must be a positive integer`);

const llama = await getLlama({
    gpu: false,
    build: "never",
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    maxThreads: threads,
    logLevel: LlamaLogLevel.error,
});
// decode loads modelPath and greedy-decodes n tokens after the prompt
// (token ids, or text encoded by the model's tokenizer).
async function decode(modelPath, promptIds, promptText, addBos, n, special = false) {
    const model = await loadModel(modelPath);
    let prompt;
    if (promptIds != null) {
        prompt = promptIds;
    } else {
        prompt = Array.from(model.tokenize(promptText, special));
        if (addBos && model.tokens.bos != null) prompt.unshift(model.tokens.bos);
    }
    if (n === 0) {
        // Tokenize only.
        return { model: modelPath, prompt, tokens: [], text: "" };
    }
    if (prompt.length === 0) fail("the prompt has no tokens");
    let ctxSize = Number(a.ctx);
    if (ctxSize <= 0) ctxSize = prompt.length + n;
    const context = await model.createContext({
        contextSize: ctxSize,
        batchSize: Math.max(prompt.length, 1),
        threads,
        flashAttention: false,
    });
    const seq = context.getSequence();
    const out = [];
    const t0 = performance.now();
    let tFirst = t0;
    for await (const tok of seq.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
        if (out.length === 0) tFirst = performance.now();
        out.push(tok);
        if (out.length >= n) break;
    }
    const t1 = performance.now();
    const res = {
        model: modelPath,
        prompt,
        tokens: out,
        text: model.detokenize(out),
        prompt_s: (tFirst - t0) / 1000,
        generate_s: (t1 - t0) / 1000,
        tokens_per_s: out.length / ((t1 - t0) / 1000),
        decode_tokens_per_s: out.length > 1 ? (out.length - 1) / ((t1 - tFirst) / 1000) : null,
        threads: context.currentThreads,
    };
    await context.dispose();
    return res;
}

// loadModel loads each model file once per process.
const models = new Map();
async function loadModel(modelPath) {
    if (!models.has(modelPath)) models.set(modelPath, await llama.loadModel({ modelPath, gpuLayers: 0 }));
    return models.get(modelPath);
}

function parseIds(s) {
    const ids = s.split(/[\s,]+/).filter((x) => x !== "").map(Number);
    if (ids.some((t) => !Number.isInteger(t) || t < 0)) fail(`--prompt-ids ${s}: not a list of token ids`);
    return ids;
}

if (a.jobs) {
    // One JSON object per line on stdin: {"model", "prompt_ids" | "prompt", "add_bos", "tokens"}.
    let input = "";
    process.stdin.setEncoding("utf8");
    for await (const chunk of process.stdin) input += chunk;
    for (const line of input.split("\n")) {
        if (line.trim() === "") continue;
        const j = JSON.parse(line);
        const ids = j.prompt_ids != null ? j.prompt_ids : null;
        const res = await decode(j.model, ids, j.prompt ?? "", !!j.add_bos, j.tokens ?? n, !!j.special);
        process.stdout.write(JSON.stringify(res) + "\n");
    }
} else {
    const ids = a["prompt-ids"] != null ? parseIds(a["prompt-ids"]) : null;
    const res = await decode(a.model, ids, a.prompt, a["add-bos"], n);
    process.stdout.write(JSON.stringify(res) + "\n");
}
for (const m of models.values()) await m.dispose();
await llama.dispose();
