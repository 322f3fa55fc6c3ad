// trace_view.js: open a Chrome JSON trace in speedscope inside headless
// Chromium (puppeteer-core), screenshot it and check that the named tracks
// (e.g. coroutines "g2 pinger") are listed and drawn. Run by trace_view.sh,
// which installs puppeteer-core + speedscope and copies speedscope's release
// dir; see there. Prints `ok   trace_view:NAME` / `FAIL trace_view:NAME (why)`.
//   usage: node trace_view.js SPEEDSCOPE_DIR TRACE.json OUT.png [EXPECT_NAME...]
// SPEEDSCOPE_DIR is a writable copy of speedscope/dist/release (the profile
// script is written into it). Env CHROMIUM (default /usr/bin/chromium),
// TRACE_VIEW_TIMEOUT_MS (default 30000, per wait).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');

const [dir, trace, out, ...expect] = process.argv.slice(2);
if (!out) { console.error('usage: trace_view.js SPEEDSCOPE_DIR TRACE.json OUT.png [EXPECT_NAME...]'); process.exit(2); }
const TIMEOUT = +(process.env.TRACE_VIEW_TIMEOUT_MS || 30000);
let failed = 0;
const check = (name, ok, why) => {
  console.log(ok ? `ok   trace_view:${name}` : `FAIL trace_view:${name} (${String(why).split("\n")[0]})`);
  if (!ok) failed++;
  return ok;
};

// speedscope's #localProfilePath=P loads <script src="file:///P">: P is an
// absolute path to a script that calls speedscope.loadFileFromBase64().
const profJs = path.resolve(dir, 'profile.js');
fs.writeFileSync(profJs, `speedscope.loadFileFromBase64(${JSON.stringify(path.basename(trace))}, ` +
  `${JSON.stringify(fs.readFileSync(trace).toString('base64'))});\n`);
const url = 'file://' + path.resolve(dir, 'index.html') + '#localProfilePath=' + profJs;

// In the page: speedscope's toolbar, whose first child (view tabs "Time
// Order"...) exists only once a profile is shown; its centre shows the
// profile's name and, for several profiles, "(k/N)" on a span that opens (on
// mouse over) a table with one row per profile: <tr title="NAME">.
function pageState() {
  const body = document.body ? document.body.innerText : '';
  const bar = [...document.querySelectorAll('div')].find(d => d.children.length >= 2 &&
    /Time Order/.test(d.firstElementChild.innerText));
  const sel = bar && [...bar.querySelectorAll('span')].find(s => /\(\d+\/\d+\)\s*$/.test(s.innerText));
  if (sel) sel.dataset.tv = 'sel';  // for page.hover('[data-tv=sel]')
  const m = sel && sel.innerText.match(/^([\s\S]*?)\s*\((\d+)\/(\d+)\)\s*$/);
  const single = bar && !m && [...bar.childNodes].filter(x => x.nodeType === 3).map(x => x.textContent).join('').trim();
  return {
    error: /Something went wrong/.test(body),
    landing: /Welcome to/.test(body),
    current: m ? m[1] : single || null, n: m ? +m[3] : single ? 1 : 0,
    rows: single ? [{ title: single, weight: '?' }] : [...document.querySelectorAll('tr[title]')].map(r => ({
      title: r.title, weight: r.cells[r.cells.length - 1].innerText })),
  };
}

// A hash of the biggest 2D canvas, the flamechart's overlay where speedscope
// writes the slice labels ('' while blank): it must change when another
// track is shown.
function labels() {
  const cs = [...document.querySelectorAll('canvas')].filter(c => c.getContext('2d'));
  cs.sort((a, b) => b.width * b.height - a.width * a.height);
  if (!cs.length) return '';
  const d = cs[0].getContext('2d').getImageData(0, 0, cs[0].width, cs[0].height).data;
  let n = 0, h = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i]) { n++; h = (h * 31 + i + d[i - 1]) | 0; }
  return n ? `${n}:${h}` : '';
}

(async () => {
  const udd = fs.mkdtempSync(path.join(os.tmpdir(), 'trace-view-'));
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, userDataDir: udd, timeout: TIMEOUT,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // profile.js is a file:// script; speedscope draws with WebGL, which
      // here is SwiftShader (no GPU): opt in, as its silent fallback is going.
      '--allow-file-access-from-files', '--enable-unsafe-swiftshader'],
  });
  const warnings = [], errors = [], dialogs = [];
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    page.on('console', m => {
      const t = m.text();
      if (/Tried to end|still open at end/.test(t)) warnings.push(t);
      if (m.type() === 'error' || /Failed to load/.test(t)) errors.push(t);
    });
    page.on('pageerror', e => errors.push(e.message));
    const alerted = new Promise(res => page.on('dialog', d => {
      dialogs.push(d.message()); d.dismiss().catch(() => {}); res();
    }));
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });

    // Wait until speedscope shows a profile or its error, or alerts.
    await Promise.race([alerted, page.waitForFunction(`(() => { const s = (${pageState})(); return s.error || s.n > 0 })()`,
      { timeout: TIMEOUT, polling: 'mutation' })]).catch(() => {});
    const st = await page.evaluate(pageState);
    const why = st.error ? 'speedscope: Something went wrong' : dialogs.length ? `alert: ${dialogs[0]}`
      : st.landing ? 'still on the landing page' : 'timed out';
    const loaded = check('load', st.n > 0 && !st.error && !dialogs.length,
      `${why}${errors.length ? '; ' + errors.slice(0, 2).join('; ') : ''}`);
    if (loaded) {
      check('tracks', st.rows.length === st.n, `selector says ${st.n} profiles, its list has ${st.rows.length}`);
      check('nesting', !warnings.length, `${warnings.length} mis-nested slices, first: ${warnings[0]}`);
      check('errors', !errors.length, errors[0]);
    }
    // One check per expected track name: it is a profile named
    // "PROCESS (pid P), NAME (tid T)" (or "NAME (pid P, tid T)") with a weight.
    const esc = s => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    let shown = null;
    for (const name of expect) {
      const re = new RegExp(`(^|, )${esc(name)} \\((pid|tid) `);
      const row = st.rows.find(r => re.test(r.title));
      if (!check(`track:${name}`, row && !/^0(\.0+)?[a-zµ]*s$/.test(row.weight),
        row ? `empty track ${row.title}: ${row.weight}` : `not among ${st.rows.length} profiles`)) continue;
      // Show the first expected track: hover the selector, click its row
      // (speedscope acts on mouseover/mouseup), move the mouse away.
      if (shown) continue;
      shown = row.title;
      const before = st.current === row.title ? '' : await page.evaluate(labels);
      if (st.current !== row.title) {
        await page.hover('[data-tv=sel]');
        await (await page.$$('tr[title]'))[st.rows.indexOf(row)].click();
        await page.mouse.move(700, 850);
      }
      // The overlay is redrawn on the next animation frame: wait for it.
      const drawn = await page.waitForFunction(`(() => { const l = (${labels})();
        return l && l !== ${JSON.stringify(before)} && (${pageState})().current === ${JSON.stringify(row.title)} })()`,
      { timeout: TIMEOUT, polling: 'raf' }).then(() => true, () => false);
      const cur = (await page.evaluate(pageState)).current;
      check(`shown:${name}`, cur === row.title && drawn,
        cur !== row.title ? `toolbar shows "${cur}"` : 'no slice labels drawn');
    }
    // Screenshot with the track list open (hover), over the shown track.
    if (await page.$('[data-tv=sel]')) {
      await page.hover('[data-tv=sel]');
      await page.waitForSelector('tr[title]', { visible: true, timeout: TIMEOUT });
    }
    await page.screenshot({ path: out });
    check('screenshot', fs.statSync(out).size > 0, 'empty file');
  } catch (e) {
    check('run', false, e.message.split('\n')[0]);
  } finally {
    await browser.close().catch(() => {});
    fs.rmSync(udd, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
})();
