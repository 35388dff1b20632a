// Viesti dashboard: polls the JSON API (/api/v1) and renders it; the live topic view is a small
// MQTT 3.1.1 client over the broker's WebSocket listener. No framework; every value from the
// broker goes into the page as text (textContent), never as markup.
'use strict';

const POLL_MS = 2000;
const PAGE = 50;
const $ = (id) => document.getElementById(id);

function setStatus(text, isError) {
	const s = $('status');
	s.textContent = text;
	s.classList.toggle('error', !!isError);
}

async function api(method, path, body) {
	const opts = {method: method, cache: 'no-store', headers: {}};
	if (body !== undefined) {
		opts.headers['Content-Type'] = 'application/json';
		opts.body = JSON.stringify(body);
	}
	const r = await fetch('/api/v1' + path, opts);
	let j = null;
	try {
		j = await r.json();
	} catch (e) {
		j = null;
	}
	if (!r.ok)
		throw new Error(j && j.error ? j.error.message : r.status + ' ' + r.statusText);
	return j;
}

function fmtBytes(n) {
	const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
	let i = 0;
	while (n >= 1024 && i < units.length - 1) {
		n /= 1024;
		i++;
	}
	return (i ? n.toFixed(1) : String(n)) + ' ' + units[i];
}

function fmtTime(s) {
	return s ? new Date(s * 1000).toLocaleString() : '–';
}

function fmtUptime(s) {
	const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
	return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm ' + (s % 60) + 's';
}

function cell(tr, text, cls) {
	const td = document.createElement('td');
	td.textContent = text === null || text === undefined ? '–' : String(text);
	if (cls)
		td.className = cls;
	tr.appendChild(td);
	return td;
}

// ---- overview ------------------------------------------------------------------------------

let lastStats = null;

function renderThreads(threads) {
	const ul = $('threads');
	if (ul.children.length !== threads.length) {
		ul.textContent = '';
		for (const t of threads) {
			const li = document.createElement('li');
			const id = 'thread-' + t.thread;
			const label = document.createElement('label');
			label.htmlFor = id;
			label.textContent = 'Thread ' + t.thread;
			const m = document.createElement('meter');
			m.id = id;
			m.min = 0;
			m.max = 1;
			m.low = 0.5;
			m.high = 0.8;
			li.append(label, m, document.createElement('span'));
			ul.appendChild(li);
		}
	}
	threads.forEach((t, i) => {
		const li = ul.children[i];
		li.querySelector('meter').value = t.load;
		li.querySelector('span').textContent = ' ' + Math.round(t.load * 100) + '%';
	});
}

async function pollStats() {
	const st = await api('GET', '/stats');
	lastStats = st;
	$('broker-info').textContent = 'version ' + st.version + ', up ' + fmtUptime(st.uptime_seconds);
	$('s-clients').textContent = st.clients_connected;
	$('s-sessions').textContent = st.sessions;
	$('s-subs').textContent = st.subscriptions;
	$('s-retained').textContent = st.retained_messages;
	$('s-rate-in').textContent = st.rates.messages_received;
	$('s-rate-out').textContent = st.rates.messages_sent;
	$('s-bytes-in').textContent = fmtBytes(st.rates.bytes_received);
	$('s-bytes-out').textContent = fmtBytes(st.rates.bytes_sent);
	$('s-queued').textContent = st.queued_messages + ' / ' + st.inflight_messages;
	$('s-memory').textContent = fmtBytes(st.memory_resident_bytes);
	renderThreads(st.threads);
	updateLiveHow();
}

// ---- clients -------------------------------------------------------------------------------

const clients = {cursors: [''], page: 0, next: null, shown: ''};

async function disconnect(id, button) {
	if (!window.confirm('Disconnect client "' + id + '"?'))
		return;
	button.disabled = true;
	try {
		await api('POST', '/clients/' + encodeURIComponent(id) + '/disconnect');
		setStatus('Asked client ' + id + ' to disconnect.');
		await pollClients();
	} catch (e) {
		setStatus('Disconnect failed: ' + e.message, true);
		button.disabled = false;
	}
}

function renderClients(list) {
	const tbody = $('client-rows');
	// Keep the keyboard focus on the same client's button across a refresh.
	const focused = tbody.contains(document.activeElement) ?
		document.activeElement.dataset.id : null;
	tbody.textContent = '';
	for (const c of list.clients) {
		const tr = document.createElement('tr');
		tr.dataset.id = c.id;
		const th = document.createElement('th');
		th.scope = 'row';
		th.textContent = c.id;
		tr.appendChild(th);
		cell(tr, c.username);
		cell(tr, c.connected ? c.address : 'offline');
		cell(tr, c.protocol);
		cell(tr, c.listener);
		cell(tr, fmtTime(c.connected ? c.connected_since : c.offline_since));
		cell(tr, c.connected ? c.keep_alive + ' s' : null, 'num');
		cell(tr, c.inflight, 'num');
		cell(tr, c.queued, 'num');
		cell(tr, c.connected ? fmtBytes(c.bytes_in) : null, 'num');
		cell(tr, c.connected ? fmtBytes(c.bytes_out) : null, 'num');
		const td = cell(tr, '');
		if (c.connected) {
			const b = document.createElement('button');
			b.type = 'button';
			b.className = 'danger';
			b.textContent = 'Disconnect';
			b.dataset.id = c.id;
			b.setAttribute('aria-label', 'Disconnect ' + c.id);
			b.addEventListener('click', () => disconnect(c.id, b));
			td.appendChild(b);
			if (focused === c.id)
				setTimeout(() => b.focus(), 0);
		}
		tbody.appendChild(tr);
	}
	$('client-caption').textContent = ($('client-all').checked ? 'Clients and sessions' :
		'Connected clients') + ': ' + list.count + ' shown' +
		(list.next_cursor ? ', more on the next page' : '');
	$('client-next').disabled = !list.next_cursor;
}

async function pollClients() {
	const q = new URLSearchParams({limit: PAGE});
	const prefix = $('client-prefix').value;
	if (prefix)
		q.set('prefix', prefix);
	if ($('client-all').checked)
		q.set('state', 'all');
	const cursor = clients.cursors[clients.page];
	if (cursor)
		q.set('cursor', cursor);
	const list = await api('GET', '/clients?' + q);
	clients.next = list.next_cursor;
	const key = JSON.stringify(list);
	if (key !== clients.shown) { // redraw only what changed: focus and selection stay
		clients.shown = key;
		renderClients(list);
	}
}

function clientsFirstPage() {
	clients.cursors = [''];
	clients.page = 0;
	pollClients().catch((e) => setStatus(e.message, true));
}

// ---- retained ------------------------------------------------------------------------------

const retained = {cursor: '', next: null};

async function showRetained(fromStart) {
	if (fromStart)
		retained.cursor = '';
	const q = new URLSearchParams({filter: $('retained-filter').value, limit: PAGE});
	if ($('retained-b64').checked)
		q.set('encoding', 'base64');
	if (retained.cursor)
		q.set('cursor', retained.cursor);
	const list = await api('GET', '/retained?' + q);
	const tbody = $('retained-rows');
	tbody.textContent = '';
	for (const m of list.retained) {
		const tr = document.createElement('tr');
		const th = document.createElement('th');
		th.scope = 'row';
		th.textContent = m.topic;
		tr.appendChild(th);
		cell(tr, (m.encoding === 'base64' ? '(base64) ' : '') + m.payload, 'payload');
		cell(tr, m.qos, 'num');
		cell(tr, fmtBytes(m.size), 'num');
		tbody.appendChild(tr);
	}
	retained.next = list.next_cursor;
	$('retained-caption').textContent = 'Retained messages matching ' +
		$('retained-filter').value + ': ' + list.count + ' shown' +
		(list.next_cursor ? ', more on the next page' : '');
	$('retained-next').disabled = !list.next_cursor;
}

async function deleteRetained() {
	const f = $('retained-filter').value;
	if (!window.confirm('Delete every retained message matching "' + f + '"?'))
		return;
	try {
		const r = await api('DELETE', '/retained?' + new URLSearchParams({filter: f}));
		setStatus('Deleted ' + r.deleted + ' retained message(s).');
		await showRetained(true);
	} catch (e) {
		setStatus('Delete failed: ' + e.message, true);
	}
}

// ---- live topics: MQTT 3.1.1 over WebSocket -------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', {fatal: false});
const live = {ws: null, buf: new Uint8Array(0), ping: null, count: 0};

function wsListener() {
	if (!lastStats)
		return null;
	return lastStats.listeners.find((l) => l.protocol === 'websockets') || null;
}

function updateLiveHow() {
	const l = wsListener();
	$('live-how').textContent = l ? 'Messages arrive over the broker\'s MQTT over WebSocket ' +
		'listener ' + l.name + '.' : 'The broker has no MQTT over WebSocket listener: add one ' +
		'(listener 8080, protocol websockets) to watch topics here.';
	if (!live.ws)
		$('live-start').disabled = !l;
}

function str(s) {
	const b = enc.encode(s);
	return [b.length >> 8, b.length & 255, ...b];
}

function packet(type, body) {
	const len = [];
	let n = body.length;
	do {
		let d = n % 128;
		n = Math.floor(n / 128);
		len.push(n ? d | 128 : d);
	} while (n);
	return new Uint8Array([type, ...len, ...body]);
}

function liveState(text) {
	$('live-state').textContent = text;
}

function addLive(topic, payload) {
	const ol = $('live-messages');
	const li = document.createElement('li');
	const t = document.createElement('time');
	const now = new Date();
	t.dateTime = now.toISOString();
	t.textContent = now.toLocaleTimeString();
	const tp = document.createElement('span');
	tp.className = 'topic';
	tp.textContent = topic;
	const code = document.createElement('code');
	code.textContent = dec.decode(payload);
	li.append(t, tp, code);
	ol.insertBefore(li, ol.firstChild);
	while (ol.children.length > 200)
		ol.removeChild(ol.lastChild);
	live.count++;
	liveState('Subscribed to ' + $('live-filter').value + ': ' + live.count + ' message(s).');
}

// One whole MQTT packet at buf[0..]: [type byte, body] and its length, or null.
function takePacket(buf) {
	let mult = 1, len = 0, i = 1;
	for (;; i++) {
		if (i >= buf.length || i > 4)
			return null;
		len += (buf[i] & 127) * mult;
		mult *= 128;
		if (!(buf[i] & 128))
			break;
	}
	const start = i + 1;
	if (buf.length < start + len)
		return null;
	return {type: buf[0], body: buf.subarray(start, start + len), size: start + len};
}

function onPacket(p) {
	const type = p.type >> 4;
	if (type === 2) { // CONNACK
		if (p.body[1] !== 0) {
			liveState('The broker refused the connection (CONNACK ' + p.body[1] + ').');
			stopLive();
			return;
		}
		const filter = $('live-filter').value;
		live.ws.send(packet(0x82, [0, 1, ...str(filter), 0]));
		liveState('Subscribing to ' + filter + '…');
	} else if (type === 9) { // SUBACK
		liveState(p.body[2] === 0x80 ? 'The broker refused the subscription.' :
			'Subscribed to ' + $('live-filter').value + ': waiting for messages.');
	} else if (type === 3) { // PUBLISH (QoS 0: we subscribed at 0)
		const tlen = (p.body[0] << 8) | p.body[1];
		const topic = dec.decode(p.body.subarray(2, 2 + tlen));
		const off = 2 + tlen + (((p.type >> 1) & 3) ? 2 : 0);
		addLive(topic, p.body.subarray(off));
	}
}

function onData(ev) {
	const chunk = new Uint8Array(ev.data);
	const buf = new Uint8Array(live.buf.length + chunk.length);
	buf.set(live.buf);
	buf.set(chunk, live.buf.length);
	let rest = buf;
	for (let p; (p = takePacket(rest)) !== null;) {
		onPacket(p);
		if (!live.ws)
			return;
		rest = rest.subarray(p.size);
	}
	live.buf = rest.slice();
}

function startLive(ev) {
	ev.preventDefault();
	const l = wsListener();
	if (!l || live.ws)
		return;
	const scheme = l.tls ? 'wss://' : 'ws://';
	const url = scheme + location.hostname + ':' + l.port + (l.websocket_path || '/mqtt');
	const ws = new WebSocket(url, 'mqtt');
	ws.binaryType = 'arraybuffer';
	live.ws = ws;
	live.buf = new Uint8Array(0);
	live.count = 0;
	$('live-start').disabled = true;
	$('live-stop').disabled = false;
	liveState('Connecting to ' + url + '…');
	ws.onopen = () => {
		const user = $('live-user').value, pass = $('live-pass').value;
		const id = 'viesti-dashboard-' + Math.random().toString(16).slice(2, 10);
		let flags = 0x02; // clean session
		const payload = [...str(id)];
		if (user) {
			flags |= 0x80;
			payload.push(...str(user));
			if (pass) {
				flags |= 0x40;
				payload.push(...str(pass));
			}
		}
		ws.send(packet(0x10, [...str('MQTT'), 4, flags, 0, 60, ...payload]));
		live.ping = setInterval(() => ws.send(new Uint8Array([0xc0, 0])), 30000);
	};
	ws.onmessage = onData;
	ws.onerror = () => liveState('WebSocket error (' + url + ').');
	ws.onclose = () => {
		if (live.ws === ws) {
			liveState('Disconnected.');
			stopLive();
		}
	};
}

function stopLive() {
	const ws = live.ws;
	live.ws = null;
	clearInterval(live.ping);
	if (ws && ws.readyState === WebSocket.OPEN) {
		ws.send(new Uint8Array([0xe0, 0])); // DISCONNECT
		ws.close();
	}
	$('live-stop').disabled = true;
	$('live-start').disabled = !wsListener();
	if ($('live-state').textContent.startsWith('Subscribed'))
		liveState('Stopped after ' + live.count + ' message(s).');
}

// ---- wiring --------------------------------------------------------------------------------

async function poll() {
	try {
		await Promise.all([pollStats(), pollClients()]);
		if ($('status').classList.contains('error'))
			setStatus('');
	} catch (e) {
		setStatus('Cannot read the broker: ' + e.message, true);
	}
	setTimeout(poll, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
	$('client-search').addEventListener('submit', (ev) => {
		ev.preventDefault();
		clientsFirstPage();
	});
	$('client-all').addEventListener('change', clientsFirstPage);
	$('client-first').addEventListener('click', clientsFirstPage);
	$('client-next').addEventListener('click', () => {
		if (!clients.next)
			return;
		clients.cursors[clients.page + 1] = clients.next;
		clients.page++;
		pollClients().catch((e) => setStatus(e.message, true));
	});
	$('retained-form').addEventListener('submit', (ev) => {
		ev.preventDefault();
		showRetained(true).catch((e) => setStatus(e.message, true));
	});
	$('retained-next').addEventListener('click', () => {
		retained.cursor = retained.next;
		showRetained(false).catch((e) => setStatus(e.message, true));
	});
	$('retained-delete').addEventListener('click', deleteRetained);
	$('live-form').addEventListener('submit', startLive);
	$('live-stop').addEventListener('click', stopLive);
	poll();
	showRetained(true).catch((e) => setStatus(e.message, true));
});
