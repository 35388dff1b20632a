// Runs one MQTT.js 5 publish/subscribe exchange described by a JSON spec (argv[2]) and prints the
// result as one JSON line. Used by test_interop.py; MQTT.js is found through NODE_PATH or
// ../node_modules relative to this file.
//
// spec = {port, version (4|5), timeoutMs, url (default mqtt://127.0.0.1:PORT), ca (a PEM file to
//         trust, for mqtts:// and wss://),
//         sub: {clientId, topic, qos, count, properties},     // optional
//         pub: {clientId, messages: [{topic, payload, qos, retain, properties}]}}   // optional
// prints {connack: {...}, received: [{topic, payload, qos, retain, properties}], errors: [...]}
'use strict';
const path = require('path');
let mqtt;
try {
	mqtt = require('mqtt');
} catch (e) {
	mqtt = require(path.join(__dirname, '..', 'node_modules', 'mqtt'));
}

const fs = require('fs');
const spec = JSON.parse(process.argv[2]);
const url = spec.url || 'mqtt://127.0.0.1:' + spec.port;
const version = spec.version || 5;
const out = {connack: null, received: [], errors: []};

function finish(code) {
	process.stdout.write(JSON.stringify(out) + '\n');
	process.exit(code);
}

setTimeout(() => {
	out.errors.push('timeout');
	finish(0);
}, spec.timeoutMs || 8000);

function connect(clientId) {
	return new Promise((resolve, reject) => {
		const opts = {clientId, protocolVersion: version, reconnectPeriod: 0,
			connectTimeout: 5000};
		if (spec.ca) {
			opts.ca = fs.readFileSync(spec.ca);
			opts.rejectUnauthorized = true;
		}
		const c = mqtt.connect(url, opts);
		c.once('connect', (ack) => resolve([c, ack]));
		c.once('error', reject);
	});
}

async function main() {
	let sub = null;
	const want = spec.sub ? spec.sub.count : 0;
	const done = new Promise((resolve) => {
		if (!want)
			resolve();
		out._resolve = resolve;
	});
	if (spec.sub) {
		const [c, ack] = await connect(spec.sub.clientId || 'js-sub-' + process.pid);
		out.connack = {returnCode: ack.returnCode, reasonCode: ack.reasonCode,
			properties: ack.properties || null};
		sub = c;
		c.on('message', (topic, payload, packet) => {
			out.received.push({topic, payload: payload.toString(), qos: packet.qos,
				retain: packet.retain, properties: packet.properties || null});
			if (out.received.length >= want)
				out._resolve();
		});
		await new Promise((resolve, reject) => c.subscribe(spec.sub.topic,
			{qos: spec.sub.qos || 0, properties: spec.sub.properties},
			(err, granted) => (err ? reject(err) : resolve(granted))));
	}
	if (spec.pub) {
		const [p] = await connect(spec.pub.clientId || 'js-pub-' + process.pid);
		for (const m of spec.pub.messages) {
			await new Promise((resolve, reject) => p.publish(m.topic, m.payload,
				{qos: m.qos || 0, retain: !!m.retain, properties: m.properties},
				(err) => (err ? reject(err) : resolve())));
		}
		await new Promise((resolve) => p.end(false, {}, resolve));
	}
	await done;
	delete out._resolve;
	if (sub)
		await new Promise((resolve) => sub.end(false, {}, resolve));
	finish(0);
}

main().catch((e) => {
	out.errors.push(String(e && e.stack || e));
	delete out._resolve;
	finish(1);
});
