// Loads one page in Debian's chromium (headless, driven by playwright-core, which downloads no
// browser) and waits until a JS expression is truthy in it; prints the result as one JSON line.
// Used by the MQTT-over-WebSocket browser tests through helpers.run_browser; playwright-core is
// found through NODE_PATH or ../node_modules relative to this file.
//
// spec = {url,                      // page to load
//         wait_for,                 // JS expression polled in the page until truthy
//                                   //   (default "window.result !== undefined")
//         timeout_ms,               // for the load and the wait together (default 20000)
//         ignore_https_errors,      // true for wss:// / https:// with the self-signed test CA
//         executable_path,          // default $CHROMIUM or /usr/bin/chromium
//         args: [...]}              // extra chromium flags (optional)
// prints {ok, result (window.result, null if unset), console: ["type: text", ...],
//         errors: [page errors and failed requests], error (when ok is false)}
// Exit status: 0 when wait_for became truthy, 1 on timeout or a page failure, 2 when chromium
// cannot be launched or the spec is bad. The browser is always closed.
'use strict';
const path = require('path');
let playwright;
try {
	playwright = require('playwright-core');
} catch (e) {
	playwright = require(path.join(__dirname, '..', 'node_modules', 'playwright-core'));
}

const out = {ok: false, result: null, console: [], errors: []};
let printed = false;

function print() {
	if (!printed) {
		printed = true;
		process.stdout.write(JSON.stringify(out) + '\n');
	}
}

function fail(code, msg) {
	out.ok = false;
	out.error = msg;
	process.stderr.write('browser_run: ' + msg + '\n');
	print();
	process.exitCode = code;
}

async function main() {
	let spec;
	try {
		spec = JSON.parse(process.argv[2]);
		if (!spec || typeof spec.url !== 'string')
			throw new Error('spec.url missing');
	} catch (e) {
		return fail(2, 'bad spec (usage: node browser_run.js \'{"url": ...}\'): ' + e.message);
	}
	const timeout = spec.timeout_ms || 20000;
	const waitFor = spec.wait_for || 'window.result !== undefined';
	const executablePath = spec.executable_path || process.env.CHROMIUM || '/usr/bin/chromium';
	// Root in a container has no usable sandbox; /dev/shm may be tiny there (64 MB in Docker).
	const args = ['--disable-dev-shm-usage'];
	if (typeof process.getuid === 'function' && process.getuid() === 0)
		args.push('--no-sandbox');
	args.push(...(spec.args || []));

	// Last resort if something hangs (browser.close included): report, and let playwright kill
	// the chromium it started when the process exits.
	const watchdog = setTimeout(() => {
		fail(1, 'watchdog: no answer after ' + (timeout + 20000) + ' ms');
		process.exit(1);
	}, timeout + 20000);
	watchdog.unref();

	let browser;
	try {
		browser = await playwright.chromium.launch({executablePath, args, headless: true,
			timeout: 30000});
	} catch (e) {
		return fail(2, 'cannot launch chromium (' + executablePath + '): ' +
			String(e.message || e).split('\n')[0]);
	}
	try {
		const context = await browser.newContext({ignoreHTTPSErrors: !!spec.ignore_https_errors});
		const page = await context.newPage();
		page.on('console', (m) => out.console.push(m.type() + ': ' + m.text()));
		page.on('pageerror', (e) => out.errors.push('pageerror: ' + (e.message || String(e))));
		page.on('requestfailed', (r) => out.errors.push('requestfailed: ' + r.url() + ' ' +
			(r.failure() ? r.failure().errorText : '')));
		page.on('crash', () => out.errors.push('page crashed'));
		const deadline = Date.now() + timeout;
		let err = null;
		try {
			const resp = await page.goto(spec.url, {timeout, waitUntil: 'load'});
			if (resp && !resp.ok())
				out.errors.push('HTTP ' + resp.status() + ' for ' + spec.url);
			await page.waitForFunction(waitFor, null,
				{timeout: Math.max(1, deadline - Date.now()), polling: 50});
			out.ok = true;
		} catch (e) {
			err = String(e.message || e).split('\n')[0];
		}
		try {
			const r = await page.evaluate(() => window.result);
			out.result = r === undefined ? null : r;
		} catch (e) {
			out.errors.push('reading window.result: ' + String(e.message || e).split('\n')[0]);
		}
		if (err)
			fail(1, err);
		else
			print();
	} catch (e) {
		fail(1, String(e.message || e).split('\n')[0]);
	} finally {
		await browser.close().catch(() => {});
	}
}

main().catch((e) => fail(2, String((e && e.stack) || e)));
