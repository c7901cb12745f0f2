#!/usr/bin/env node
'use strict';
/*
 * Random JSON corpus for canonical-JSON interop tests.
 *
 *   node interop/random-json.js --count 10000 --seed 42 > corpus.jsonl
 *
 * Each output line is {"text": "<raw JSON text>", "canonical": "<stringify(JSON.parse(text))>"}
 * where stringify is dm3-lib-shared's (safe-stable-stringify 2.4.3), i.e. the
 * bytes every DM3 signature and hash covers. The Rust side parses `text` with
 * its own parser and must print `canonical` byte for byte.
 *
 * The raw text is written by hand (not by JSON.stringify) so that it contains
 * what breaks canonicalizers: every escape spelling (\uXXXX in upper and lower
 * case, \/, short escapes, surrogate pairs as escapes), raw U+2028/2029 and
 * DEL, astral characters, keys whose UTF-16 order differs from code-point
 * order, integer-like keys, the same key spelled two ways (duplicates: last
 * one wins), empty keys, numbers spelled oddly (1E+21, 1.0, -0, 0.1e-6,
 * 5e-324, integers beyond 2^53 and beyond u64), nesting up to depth 40, and
 * random insignificant whitespace.
 *
 * Deliberately NOT generated, because the Rust side rejects them by design:
 *  - lone surrogates (e.g. "\uD800" alone): a Rust String cannot hold them,
 *    so such JSON is refused as malformed instead of canonicalized;
 *  - numbers outside the finite f64 range, such as 1e400 (JS makes it
 *    Infinity and stringify prints null; Rust refuses a non-finite number) or
 *    1e-400 (underflows to 0 in JS; outside the representable range too).
 *
 * Deterministic: the same --seed gives the same output (a seeded PRNG, no
 * Math.random, no clock).
 */
const { stringify } = require('@dm3-org/dm3-lib-shared');

// ------------------------------------------------------------------ args
function parseArgs(argv) {
    const out = { count: 10000, seed: 42 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const val = () => {
            const v = argv[++i];
            if (v === undefined || !/^\d+$/.test(v)) usage(`${a} needs a non-negative integer`);
            return Number(v);
        };
        if (a === '--count') out.count = val();
        else if (a === '--seed') out.seed = val();
        else if (a === '-h' || a === '--help') usage();
        else usage(`unknown argument ${a}`);
    }
    return out;
}
function usage(msg) {
    if (msg) process.stderr.write(`random-json: ${msg}\n`);
    process.stderr.write('usage: node interop/random-json.js [--count N] [--seed S] > file.jsonl\n');
    process.exit(msg ? 2 : 0);
}

// ------------------------------------------------------------------ PRNG
// sfc32 seeded through splitmix32: small, fast, and identical on every
// platform (only 32-bit integer ops).
function makeRng(seed) {
    let s = seed >>> 0;
    const splitmix = () => {
        s = (s + 0x9e3779b9) >>> 0;
        let z = s;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
    };
    let a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix();
    const u32 = () => {
        const t = (((a + b) >>> 0) + d) >>> 0;
        d = (d + 1) >>> 0;
        a = b ^ (b >>> 9);
        b = (c + (c << 3)) >>> 0;
        c = ((c << 21) | (c >>> 11)) >>> 0;
        c = (c + t) >>> 0;
        return t;
    };
    for (let i = 0; i < 12; i++) u32();
    const r = {
        u32,
        float: () => u32() / 4294967296,
        int: (n) => Math.floor((u32() / 4294967296) * n), // [0, n)
        range: (lo, hi) => lo + Math.floor((u32() / 4294967296) * (hi - lo + 1)), // [lo, hi]
        chance: (p) => u32() / 4294967296 < p,
        pick: (arr) => arr[Math.floor((u32() / 4294967296) * arr.length)],
    };
    return r;
}

// ------------------------------------------------------------------ generator
function makeGenerator(rng) {
    const hex4 = (n) => {
        const h = n.toString(16).padStart(4, '0');
        // Upper, lower, or mixed case: all are legal and must decode alike.
        const mode = rng.int(3);
        if (mode === 0) return h;
        if (mode === 1) return h.toUpperCase();
        return [...h].map((ch) => (rng.chance(0.5) ? ch.toUpperCase() : ch)).join('');
    };
    const uesc = (unit) => '\\u' + hex4(unit);

    // ---------------- strings: a logical value first, then a random spelling
    const RAW_SPECIALS = [0x2028, 0x2029, 0x7f, 0x85, 0xa0, 0xad, 0xfeff, 0xfffe, 0xffff, 0xfffd, 0xfb01, 0x200d, 0xfe0f, 0x0301, 0x00e9, 0x00fc, 0x00df];
    const BMP_RANGES = [
        [0xa0, 0xff], // Latin-1
        [0x100, 0x24f], // Latin extended
        [0x300, 0x36f], // combining marks
        [0x370, 0x3ff], // Greek
        [0x400, 0x4ff], // Cyrillic
        [0x590, 0x6ff], // Hebrew, Arabic (RTL)
        [0x2000, 0x206f], // punctuation incl. U+2028/2029, ZWJ, bidi controls
        [0x3040, 0x30ff], // kana
        [0x4e00, 0x9fff], // CJK
        [0xac00, 0xd7a3], // Hangul
        [0xe000, 0xf8ff], // private use (sorts above surrogates in UTF-16)
        [0xf900, 0xfffd], // compatibility, presentation forms, specials
    ];
    const ASTRAL = [0x1f600, 0x1f44b, 0x1f468, 0x10000, 0x10ffff, 0x1d11e, 0x20000, 0x2a6d6, 0xe0001, 0xf0000];
    const ASTRAL_RANGES = [
        [0x10000, 0x1ffff],
        [0x1f300, 0x1faff],
        [0x20000, 0x2ffff],
        [0xe0000, 0x10ffff],
    ];

    function randomCodePoint() {
        const k = rng.int(100);
        if (k < 45) return rng.range(0x20, 0x7e); // printable ASCII, incl. " \ /
        if (k < 53) return rng.range(0x00, 0x1f); // C0 controls
        if (k < 60) return rng.pick(RAW_SPECIALS);
        if (k < 82) {
            const [lo, hi] = rng.pick(BMP_RANGES);
            return rng.range(lo, hi);
        }
        if (k < 90) return rng.pick(ASTRAL);
        const [lo, hi] = rng.pick(ASTRAL_RANGES);
        return rng.range(lo, hi);
    }

    function randomStringValue(maxLen) {
        const n = rng.chance(0.1) ? 0 : rng.range(1, maxLen);
        let s = '';
        for (let i = 0; i < n; i++) s += String.fromCodePoint(randomCodePoint());
        return s;
    }

    const SHORT = { 0x08: '\\b', 0x0c: '\\f', 0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' };
    // Render a string value as a JSON string literal with a random spelling.
    function renderString(value, escapeRate) {
        let out = '"';
        for (const ch of value) {
            const cp = ch.codePointAt(0);
            if (cp === 0x22) out += rng.chance(0.8) ? '\\"' : uesc(cp);
            else if (cp === 0x5c) out += rng.chance(0.8) ? '\\\\' : uesc(cp);
            else if (cp < 0x20) out += SHORT[cp] && rng.chance(0.6) ? SHORT[cp] : uesc(cp);
            else if (cp === 0x2f && rng.chance(0.3)) out += '\\/';
            else if (rng.chance(escapeRate)) {
                if (cp > 0xffff) out += uesc(ch.charCodeAt(0)) + uesc(ch.charCodeAt(1)); // surrogate pair as escapes
                else out += uesc(cp);
            } else out += ch; // raw, including U+2028/2029, DEL, astral
        }
        return out + '"';
    }

    // ---------------- keys
    // Pairs that sort differently in UTF-16 code units (what JS compares)
    // and in code points / UTF-8 bytes (what a naive Rust sort compares),
    // integer-like keys (JS enumerates them first, the sort must not), and
    // keys that only differ by normalisation or case.
    const KEY_POOL = [
        '', ' ', 'a', 'A', 'b', 'B', '_', 'aa', 'ab', 'a\u0000', 'a b',
        '\uFB01', '\u{1F600}', '\uFFFF', '\uFFFD', '\uE000', '\u{10000}', '\u{10FFFF}', '\uD7FF',
        '0', '1', '2', '9', '10', '01', '-1', '1.5', '1e3', '4294967294', '4294967295', '9007199254740993',
        '\u00e9', 'e\u0301', '\u00c4', 'z', '~', '\u007f', '\u2028', '\u0080',
        'message', 'metadata', 'signature', 'timestamp', 'to', 'from', 'type', '__proto__', 'constructor', 'toString',
    ];
    function randomKey() {
        return rng.chance(0.6) ? rng.pick(KEY_POOL) : randomStringValue(6);
    }

    // ---------------- numbers
    // Raw spellings that must canonicalize exactly as JS prints them.
    const NUMBER_POOL = [
        '0', '-0', '0.0', '-0.0', '0e0', '0E-0', '-0e+5', '1', '1.0', '1.00000', '-1', '1e0', '1e+0', '1E1', '1e05', '1E-05',
        '1e21', '1E+21', '1e+21', '1e20', '100000000000000000000', '999999999999999999999', '1000000000000000000000',
        '123456789012345678901234567890', '-123456789012345678901234567890',
        '0.1e-6', '0.000001', '0.0000001', '1e-6', '1e-7', '1E-7', '-1e-7', '123.456e-10',
        '5e-324', '4.9e-324', '2.2250738585072014e-308', '2.225073858507201e-308', '1.7976931348623157e308',
        '1.7976931348623157E+308', '-1.7976931348623157e308', '1.7976931348623158e308',
        '9007199254740991', '9007199254740992', '9007199254740993', '-9007199254740993', '18446744073709551615',
        '18446744073709551616', '-9223372036854775808', '-9223372036854775809', '4294967296',
        '0.1', '0.2', '0.30000000000000004', '1.0000000000000002', '0.1000000000000000055511151231257827021181583404541015625',
        '3.14159265358979323846264338327950288419716939937510', '2.718281828459045235360287471352662497757',
        '-2.5e-5', '1.5e300', '1e-300', '123e-20', '1700000000000', '1700000000000.0', '1.7e12',
    ];
    const dv = new DataView(new ArrayBuffer(8));
    function randomDouble() {
        dv.setUint32(0, rng.u32());
        dv.setUint32(4, rng.u32());
        return dv.getFloat64(0);
    }
    // A finite, in-range value spelled in one of the ways JS itself or a
    // human would write it.
    function spellNumber(x) {
        switch (rng.int(6)) {
            case 0:
                return String(x);
            case 1:
                return x.toExponential(rng.int(17));
            case 2:
                return x.toExponential(rng.int(17)).replace('e', 'E');
            case 3:
                return x.toPrecision(rng.range(1, 21));
            case 4:
                return Math.abs(x) < 1e21 ? x.toFixed(rng.int(21)) : String(x);
            default:
                return String(x).replace('e+', rng.chance(0.5) ? 'e' : 'E+');
        }
    }
    function randomDigits(n, first1to9) {
        let s = first1to9 ? String(rng.range(1, 9)) : '';
        while (s.length < n) s += String(rng.int(10));
        return s;
    }
    function candidateNumber() {
        const k = rng.int(100);
        if (k < 30) return rng.pick(NUMBER_POOL);
        if (k < 45) {
            // integers: small, around 2^53, and far beyond u64
            const n = rng.pick([1, 2, 3, 5, 10, 15, 16, 17, 19, 20, 21, 22, 25, 30, 40]);
            const body = n === 1 ? String(rng.int(10)) : randomDigits(n, true);
            return (rng.chance(0.3) ? '-' : '') + body;
        }
        if (k < 65) {
            // decimal with an optional, oddly written exponent
            let s = (rng.chance(0.3) ? '-' : '') + (rng.chance(0.4) ? '0' : randomDigits(rng.range(1, 12), true));
            if (rng.chance(0.8)) s += '.' + randomDigits(rng.range(1, 25), false);
            if (rng.chance(0.6)) {
                s += rng.pick(['e', 'E']) + rng.pick(['', '+', '-']);
                s += String(rng.range(0, 320)).padStart(rng.range(1, 3), '0');
            }
            return s;
        }
        if (k < 75) return spellNumber(rng.range(-1000000, 1000000) / rng.pick([1, 10, 100, 1000, 3, 7]));
        return spellNumber(randomDouble());
    }
    // Only numbers whose value is finite and not an underflow to zero; see
    // the header for why.
    function randomNumber() {
        for (;;) {
            const s = candidateNumber();
            const v = Number(s);
            if (!Number.isFinite(v)) continue;
            const mantissaNonZero = /[1-9]/.test(s.replace(/[eE].*$/, ''));
            if (v === 0 && mantissaNonZero) continue;
            return s;
        }
    }

    // ---------------- structure
    const WS = [' ', '\t', '\n', '\r'];
    const ws = () => {
        if (!rng.chance(0.15)) return '';
        let s = '';
        for (let i = rng.range(1, 4); i > 0; i--) s += rng.pick(WS);
        return s;
    };
    const MAX_DEPTH = 40;

    function scalar() {
        const k = rng.int(100);
        if (k < 40) return renderString(randomStringValue(12), rng.pick([0, 0.1, 0.5, 1]));
        if (k < 80) return randomNumber();
        return rng.pick(['true', 'false', 'null']);
    }

    function object(depth, width) {
        const n = rng.int(width + 1);
        const members = [];
        const keys = [];
        for (let i = 0; i < n; i++) {
            let key;
            if (keys.length > 0 && rng.chance(0.12)) key = rng.pick(keys); // duplicate, likely spelled differently
            else key = randomKey();
            keys.push(key);
            members.push(ws() + renderString(key, rng.pick([0, 0.2, 1])) + ws() + ':' + ws() + value(depth + 1));
        }
        return '{' + (members.length ? members.join(',') + ws() : ws()) + '}';
    }

    function array(depth, width) {
        const n = rng.int(width + 1);
        const items = [];
        for (let i = 0; i < n; i++) items.push(ws() + value(depth + 1) + ws());
        return '[' + (items.length ? items.join(',') : ws()) + ']';
    }

    function value(depth) {
        // Containers get rarer with depth so documents stay small.
        if (depth < MAX_DEPTH && rng.chance(depth < 2 ? 0.55 : 0.35 / depth)) {
            return rng.chance(0.5) ? object(depth, 6) : array(depth, 6);
        }
        return scalar();
    }

    // A chain of nested containers reaching towards MAX_DEPTH.
    function deep() {
        const levels = rng.range(20, MAX_DEPTH - 1);
        let open = '';
        let close = '';
        for (let i = 0; i < levels; i++) {
            if (rng.chance(0.5)) {
                open += '[' + ws();
                close = ws() + ']' + close;
            } else {
                open += '{' + ws() + renderString(randomKey(), 0.2) + ws() + ':' + ws();
                close = ws() + '}' + close;
            }
        }
        return open + value(levels) + close;
    }

    return function document() {
        const k = rng.int(100);
        let body;
        if (k < 6) body = deep();
        else if (k < 14) body = scalar(); // a bare scalar is a JSON text too
        else body = rng.chance(0.7) ? object(0, 8) : array(0, 8);
        return ws() + body + ws();
    };
}

// ------------------------------------------------------------------ main
function main() {
    const { count, seed } = parseArgs(process.argv.slice(2));
    const rng = makeRng(seed);
    const document = makeGenerator(rng);
    const lines = [];
    let pending = 0;
    const flush = () => {
        if (lines.length) process.stdout.write(lines.join(''));
        lines.length = 0;
        pending = 0;
    };
    for (let i = 0; i < count; i++) {
        const text = document();
        // Guards against generator bugs: the text must be valid JSON and
        // must never contain a lone surrogate (see header).
        const canonical = stringify(JSON.parse(text));
        if (!text.isWellFormed() || !canonical.isWellFormed()) throw new Error(`lone surrogate generated (document ${i})`);
        const line = JSON.stringify({ text, canonical }) + '\n';
        lines.push(line);
        pending += line.length;
        if (pending > 1 << 20) flush();
    }
    flush();
}

process.stdout.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
});
main();
