'use strict';
/*
 * The palette page: a live canvas session in the browser. Each colour is a region prompt with a
 * strength; the brush paints the selected colour's mask (and takes those pixels from the other
 * colours), the eraser clears them. While painting, the changed masks go to the farm as updates
 * (a few per second; the farm renders the newest), and its frames — whole at first, then only the
 * tiles that changed — are drawn as they come, with progress previews between them. Commit stores
 * the frame as a job and downloads it; Start over ends the session and begins a new one.
 */

const COLOURS = [
  { id: 'red', css: '#dc2323', prompt: 'a red background' },
  { id: 'yellow', css: '#f5d728', prompt: 'a yellow background' },
  { id: 'green', css: '#23a53c', prompt: 'a green background' },
  { id: 'white', css: '#f5f5f5', prompt: 'a white circle on a black background' },
  { id: 'purple', css: '#8737b9', prompt: 'a purple background' },
];
/** How often updates go out while the brush moves. */
const SEND_EVERY_MS = 150;

const $ = (id) => document.getElementById(id);
const status = $('status');
const imageCanvas = $('image');
const paintCanvas = $('paint');

const page = {
  key: localStorage.getItem('farm-key') || '',
  selected: COLOURS[0].id,
  session: null,
  ws: null,
  seq: 0,
  frames: 0,
  /** Masks by colour: white where the colour is painted, black elsewhere (the session's size). */
  masks: new Map(),
  /** Colours whose mask, prompt or strength changed since the last update. */
  dirty: new Set(),
  promptDirty: false,
  /** The frame being received: its header, then its tiles' bytes. */
  incoming: null,
  drawing: Promise.resolve(),
  sentAt: new Map(),
};

function say(text) {
  status.textContent = text;
}

// --- key ---------------------------------------------------------------------------------------
$('key').value = page.key;
$('key-form').addEventListener('submit', (event) => {
  event.preventDefault();
  page.key = $('key').value.trim();
  localStorage.setItem('farm-key', page.key);
  say(page.key ? 'Key saved. Start a session.' : 'Key cleared.');
});

// --- palette -----------------------------------------------------------------------------------
for (const colour of COLOURS) {
  const item = document.createElement('li');
  item.dataset.colour = colour.id;
  item.innerHTML =
    `<button type="button" class="swatch" title="${colour.id}" style="background:${colour.css}"></button>` +
    `<input type="text" class="region-prompt" value="${colour.prompt}" aria-label="${colour.id} prompt">` +
    `<input type="range" class="region-strength" min="0" max="1" step="0.05" value="1" aria-label="${colour.id} strength">`;
  item.querySelector('.swatch').addEventListener('click', () => select(colour.id));
  for (const input of item.querySelectorAll('input')) {
    input.addEventListener('change', () => {
      if (painted(colour.id)) {
        page.dirty.add(colour.id);
        sendUpdate();
      }
    });
  }
  $('palette').append(item);
}

function select(id) {
  page.selected = id;
  $('eraser').checked = false;
  for (const item of $('palette').children) item.classList.toggle('selected', item.dataset.colour === id);
}
select(page.selected);

function regionOf(id) {
  const item = $('palette').querySelector(`[data-colour="${id}"]`);
  return { prompt: item.querySelector('.region-prompt').value.trim() || id, strength: Number(item.querySelector('.region-strength').value) };
}

$('prompt').addEventListener('change', () => {
  page.promptDirty = true;
  sendUpdate();
});
$('show-paint').addEventListener('change', (e) => paintCanvas.classList.toggle('hidden', !e.target.checked));

// --- painting ----------------------------------------------------------------------------------
function resetCanvases(size) {
  for (const canvas of [imageCanvas, paintCanvas]) {
    canvas.width = size;
    canvas.height = size;
  }
  page.masks.clear();
  for (const colour of COLOURS) {
    const mask = document.createElement('canvas');
    mask.width = size;
    mask.height = size;
    const ctx = mask.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, size, size);
    page.masks.set(colour.id, mask);
  }
}

function painted(id) {
  const mask = page.masks.get(id);
  if (!mask) return false;
  const { data } = mask.getContext('2d').getImageData(0, 0, mask.width, mask.height);
  for (let i = 0; i < data.length; i += 4) if (data[i] > 127) return true;
  return false;
}

/** Draws a line segment of the brush on the masks and on the overlay. */
function stroke(from, to) {
  const erasing = $('eraser').checked;
  const width = Number($('brush').value) * (paintCanvas.width / 256);
  const line = (ctx, style, composite = 'source-over') => {
    ctx.globalCompositeOperation = composite;
    ctx.strokeStyle = style;
    ctx.lineWidth = width;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  };
  for (const [id, mask] of page.masks) {
    const mine = !erasing && id === page.selected;
    line(mask.getContext('2d'), mine ? '#fff' : '#000');
    page.dirty.add(id);
  }
  const overlay = paintCanvas.getContext('2d');
  if (erasing) line(overlay, '#000', 'destination-out');
  else line(overlay, COLOURS.find((c) => c.id === page.selected).css, 'source-over');
}

let last = null;
let sendTimer = null;
const point = (event) => ({ x: (event.offsetX * paintCanvas.width) / paintCanvas.clientWidth, y: (event.offsetY * paintCanvas.height) / paintCanvas.clientHeight });
paintCanvas.addEventListener('pointerdown', (event) => {
  if (!page.ws) return;
  paintCanvas.setPointerCapture(event.pointerId);
  last = point(event);
  stroke(last, last);
  sendTimer = setInterval(sendUpdate, SEND_EVERY_MS);
});
paintCanvas.addEventListener('pointermove', (event) => {
  if (!last) return;
  const next = point(event);
  stroke(last, next);
  last = next;
});
const endStroke = () => {
  if (!last) return;
  last = null;
  clearInterval(sendTimer);
  sendUpdate();
};
paintCanvas.addEventListener('pointerup', endStroke);
paintCanvas.addEventListener('pointercancel', endStroke);

// --- the session -------------------------------------------------------------------------------
async function api(path, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${page.key}` },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (!res.ok) throw new Error(answer.error ? answer.error.message : `HTTP ${res.status}`);
  return answer;
}

async function start() {
  if (!page.key) return say('Enter your API key first.');
  const size = Number($('size').value);
  resetCanvases(size);
  page.seq = 0;
  page.frames = 0;
  page.dirty.clear();
  status.dataset.frames = '0';
  say('Opening a session…');
  const seed = $('seed').value;
  let session;
  try {
    session = await api('/v1/sessions', {
      prompt: $('prompt').value.trim() || 'a blue background',
      width: size,
      height: size,
      steps: Number($('steps').value),
      format: 'png',
      ...(seed !== '' ? { seed: Number(seed) } : {}),
    });
  } catch (err) {
    return say(`Could not open a session: ${err.message}`);
  }
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}${session.links.ws}?token=${encodeURIComponent(session.token)}`);
  ws.binaryType = 'arraybuffer';
  page.session = session;
  page.ws = ws;
  ws.addEventListener('open', () => say('Connected; rendering the first frame…'));
  ws.addEventListener('message', (event) => receive(event.data));
  ws.addEventListener('close', (event) => {
    if (page.ws !== ws) return;
    page.ws = null;
    $('commit').disabled = true;
    say(`The session ended${event.reason ? `: ${event.reason}` : ''}. Start a new one.`);
  });
  $('start').disabled = true;
  $('over').disabled = false;
}

function sendUpdate() {
  if (!page.ws || page.ws.readyState !== WebSocket.OPEN) return;
  if (page.dirty.size === 0 && !page.promptDirty) return;
  const update = { type: 'update', seq: ++page.seq };
  if (page.promptDirty) update.prompt = $('prompt').value.trim() || 'a blue background';
  if (page.dirty.size > 0) {
    update.regions = {};
    for (const id of page.dirty) {
      update.regions[id] = painted(id) ? { ...regionOf(id), mask: { png: page.masks.get(id).toDataURL('image/png').slice('data:image/png;base64,'.length) } } : null;
    }
  }
  page.dirty.clear();
  page.promptDirty = false;
  page.sentAt.set(update.seq, performance.now());
  status.dataset.seq = String(update.seq);
  page.ws.send(JSON.stringify(update));
}

function receive(data) {
  if (typeof data !== 'string') {
    const frame = page.incoming;
    frame.tiles.push(data);
    if (frame.tiles.length === frame.header.tiles.length) drawFrame(frame);
    return;
  }
  const message = JSON.parse(data);
  switch (message.type) {
    case 'frame':
      page.incoming = { header: message, tiles: [] };
      if (message.tiles.length === 0) drawFrame(page.incoming);
      break;
    case 'progress':
      $('preview').src = message.preview;
      $('progress').textContent = `step ${message.step} / ${message.total}`;
      break;
    case 'committed':
      download(message.job);
      break;
    case 'resumed':
      say(`The session moved to another worker (${message.from === 'commit' ? 'from the last commit' : 'rendered again'}).`);
      break;
    case 'error':
      say(`Error: ${message.message}`);
      break;
  }
}

/** Draws a frame's tiles in order (frames never overtake each other). */
function drawFrame({ header, tiles }) {
  page.incoming = null;
  page.drawing = page.drawing.then(async () => {
    const ctx = imageCanvas.getContext('2d');
    for (let i = 0; i < tiles.length; i++) {
      const bitmap = await createImageBitmap(new Blob([tiles[i]], { type: `image/${header.format}` }));
      ctx.drawImage(bitmap, header.tiles[i].x, header.tiles[i].y);
    }
    page.frames++;
    const sent = page.sentAt.get(header.basedOn);
    for (const seq of page.sentAt.keys()) if (seq <= header.basedOn) page.sentAt.delete(seq);
    status.dataset.frames = String(page.frames);
    status.dataset.basedOn = String(header.basedOn);
    $('commit').disabled = false;
    say(`Frame ${header.seq}: update ${header.basedOn}, ${header.tiles.length} tile${header.tiles.length === 1 ? '' : 's'}` + (sent ? `, ${Math.round(performance.now() - sent)} ms after it was sent` : ''));
  });
}

// --- commit, start over --------------------------------------------------------------------------
$('start').addEventListener('click', () => void start());
$('commit').addEventListener('click', () => {
  if (!page.ws) return;
  sendUpdate();
  page.ws.send(JSON.stringify({ type: 'commit' }));
  say('Committing…');
});
$('over').addEventListener('click', () => {
  const ws = page.ws;
  page.ws = null;
  if (ws) ws.close(1000, 'start over');
  paintCanvas.getContext('2d').clearRect(0, 0, paintCanvas.width, paintCanvas.height);
  $('committed').textContent = '';
  void start();
});

/** The committed frame, as the page composed it (the same pixels the job stored), downloaded. */
function download(job) {
  page.drawing.then(() => {
    imageCanvas.toBlob((blob) => {
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = `${job.id}.png`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    }, 'image/png');
    $('committed').innerHTML = `Committed as job <code>${job.id}</code> · <a href="${job.url}" target="_blank" rel="noopener">stored image</a>`;
    status.dataset.committed = job.id;
    say('Committed and downloaded.');
  });
}
