// A small guestbook on the native API: a form with a photo upload, a session, and sendFile. npm start serves it.
//
//   ./bin/nodefpm examples/guestbook.ts --listen unix:/tmp/guestbook.sock
//   GUESTBOOK_DIR=/srv/guestbook SESSION_KEY=... (32+ bytes) for a guestbook that outlives restarts.

import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSessionStore, Sessions, type Handler } from '../src/index.js';

export const api = 'native';

interface Entry {
  name: string;
  message: string;
  /** The stored photo's file name under photos/, when one was uploaded. */
  photo?: string;
  at: string;
}

interface GuestSession {
  /** The name last signed with, to fill the form in next time. */
  name?: string;
  /** A one-time notice shown on the next page. */
  flash?: string;
}

const dataDir = process.env.GUESTBOOK_DIR ?? join(tmpdir(), 'nodefpm-guestbook');
const photoDir = join(dataDir, 'photos');
const entriesFile = join(dataDir, 'entries.json');
mkdirSync(photoDir, { recursive: true });

function readEntries(): Entry[] {
  try {
    return JSON.parse(readFileSync(entriesFile, 'utf8')) as Entry[];
  } catch {
    return [];
  }
}

// Sessions live in files, so every worker of a pool (--workers N) sees the same ones. Without a key
// from the environment, sessions last until the process restarts.
const sessions = new Sessions<GuestSession>({
  keys: [process.env.SESSION_KEY ?? randomBytes(32).toString('base64url')],
  store: new FileSessionStore({ dir: join(dataDir, 'sessions') }),
});

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const PHOTO_TYPES = new Map([
  ['image/jpeg', '.jpg'],
  ['image/png', '.png'],
  ['image/gif', '.gif'],
  ['image/webp', '.webp'],
]);

async function page(req: Parameters<Handler>[0], res: Parameters<Handler>[1]): Promise<void> {
  const session = await sessions.get(req);
  const flash = session.data.flash;
  if (flash !== undefined) session.delete('flash');
  const entries = readEntries()
    .map(
      (entry) => `<li><strong>${escapeHtml(entry.name)}</strong> <small>${escapeHtml(entry.at)}</small>
        <p>${escapeHtml(entry.message)}</p>${entry.photo === undefined ? '' : `<img src="photos/${entry.photo}" width="160" alt="">`}</li>`,
    )
    .join('\n');
  res.html(`<!doctype html>
<meta charset="utf-8"><title>Guestbook</title>
<h1>Guestbook</h1>
${flash === undefined ? '' : `<p><em>${escapeHtml(flash)}</em></p>`}
<form method="post" action="sign" enctype="multipart/form-data">
  <p><input name="name" placeholder="Your name" required value="${escapeHtml(session.data.name ?? '')}"></p>
  <p><textarea name="message" placeholder="Say something" required></textarea></p>
  <p><label>A photo (optional) <input type="file" name="photo" accept="image/*"></label></p>
  <p><button>Sign</button></p>
</form>
<ul>${entries || '<li>No one has signed yet.</li>'}</ul>`);
}

async function sign(req: Parameters<Handler>[0], res: Parameters<Handler>[1]): Promise<void> {
  // Limits: a 413 with the reason beyond them. The temp file of an unused upload is removed when the
  // response ends, whatever happens.
  const form = await req.form({ maxFiles: 1, maxFileBytes: 5 * 1024 * 1024, maxFieldBytes: 4096 });
  const name = form.get('name')?.trim() ?? '';
  const message = form.get('message')?.trim() ?? '';
  if (name === '' || message === '') return res.text('A name and a message, please.\n', 400);
  const entry: Entry = { name, message, at: new Date().toISOString() };
  const photo = form.file('photo');
  if (photo !== undefined && photo.size > 0) {
    const extension = PHOTO_TYPES.get(photo.mimeType);
    if (extension === undefined) return res.text(`${photo.mimeType} is not a photo type we keep.\n`, 415);
    entry.photo = `${randomUUID()}${extension}`;
    await photo.moveTo(join(photoDir, entry.photo));
  }
  writeFileSync(entriesFile, JSON.stringify([entry, ...readEntries()].slice(0, 100)));
  const session = await sessions.get(req);
  session.set('name', name);
  session.set('flash', `Thank you, ${name}.`);
  res.redirect('./');
}

const guestbook: Handler = async (req, res) => {
  // The path below the mount point, so the app works at / and under a prefix alike.
  const path = req.pathInfo === '' ? '/' : req.pathInfo;
  if (path === '/' && (req.method === 'GET' || req.method === 'HEAD')) return page(req, res);
  if (path === '/sign' && req.method === 'POST') return sign(req, res);
  if (path.startsWith('/photos/')) return res.sendFile(path.slice('/photos/'.length), { root: photoDir, maxAge: 86400 });
  res.text('Not found\n', 404);
};

export default sessions.middleware(guestbook);
