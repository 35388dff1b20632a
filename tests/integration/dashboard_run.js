// Drives one page in Debian's chromium (headless, through playwright-core) step by step, for
// tests that act between steps (test_dashboard.py): the page stays open while the test connects
// and disconnects MQTT clients. Like browser_run.js, playwright-core comes from NODE_PATH or
// ../node_modules and downloads no browser.
//
// node dashboard_run.js '{"url": ..., "http_credentials": {"username", "password"} (optional)}'
// then one JSON command a line on stdin, each answered by one JSON line on stdout:
//   {"wait_for": EXPR, "timeout_ms": N}  polls EXPR in the page until truthy -> its value
//   {"eval": EXPR}                        -> its value
//   {"fill": SELECTOR, "value": TEXT}     types into a field (keyboard input)
//   {"press": SELECTOR, "key": KEY}       focuses SELECTOR and presses KEY ("Enter", "Tab")
// answer: {ok, result, errors: [page errors, failed requests, console errors so far]}
// (error: the reason when ok is false). Dialogs (confirm) are accepted. The browser closes at
// the end of stdin; the first line out is {"ready": true} once the page has loaded.
'use strict';
const path = require('path');
const readline = require('readline');
let playwright;
try {
	playwright = require('playwright-core');
} catch (e) {
	playwright = require(path.join(__dirname, '..', 'node_modules', 'playwright-core'));
}

function say(obj) {
	process.stdout.write(JSON.stringify(obj) + '\n');
}

async function run(page, cmd, errors) {
	const timeout = cmd.timeout_ms || 10000;
	if (cmd.wait_for !== undefined) {
		// Polled from here with page.evaluate (the DevTools protocol), not waitForFunction,
		// which evaluates in the page and so would need the dashboard's CSP to allow eval.
		const deadline = Date.now() + timeout;
		for (;;) {
			const v = await page.evaluate(cmd.wait_for);
			if (v)
				return v;
			if (Date.now() > deadline)
				throw new Error('timed out after ' + timeout + ' ms waiting for ' +
					cmd.wait_for + ' (last value: ' + JSON.stringify(v) + ')');
			await new Promise((r) => setTimeout(r, 50));
		}
	}
	if (cmd.eval !== undefined)
		return await page.evaluate(cmd.eval);
	if (cmd.fill !== undefined)
		return await page.fill(cmd.fill, cmd.value, {timeout});
	if (cmd.press !== undefined)
		return await page.press(cmd.press, cmd.key, {timeout});
	throw new Error('unknown command ' + JSON.stringify(cmd));
}

async function main() {
	const spec = JSON.parse(process.argv[2]);
	const args = ['--disable-dev-shm-usage'];
	if (typeof process.getuid === 'function' && process.getuid() === 0)
		args.push('--no-sandbox');
	const browser = await playwright.chromium.launch({
		executablePath: spec.executable_path || process.env.CHROMIUM || '/usr/bin/chromium',
		args, headless: true, timeout: 30000});
	const errors = [];
	try {
		const context = await browser.newContext(
			spec.http_credentials ? {httpCredentials: spec.http_credentials} : {});
		const page = await context.newPage();
		page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
		page.on('requestfailed', (r) => errors.push('requestfailed: ' + r.url()));
		page.on('console', (m) => {
			if (m.type() === 'error')
				errors.push('console: ' + m.text());
		});
		page.on('dialog', (d) => d.accept());
		await page.goto(spec.url, {timeout: 20000});
		say({ready: true});
		const rl = readline.createInterface({input: process.stdin});
		for await (const line of rl) {
			if (!line.trim())
				continue;
			try {
				const result = await run(page, JSON.parse(line), errors);
				say({ok: true, result: result === undefined ? null : result, errors});
			} catch (e) {
				say({ok: false, error: String(e.message || e).split('\n')[0], errors});
			}
		}
	} finally {
		await browser.close();
	}
}

main().catch((e) => {
	say({ok: false, error: String(e.message || e)});
	process.exitCode = 1;
});
