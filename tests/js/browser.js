// A headless Chromium driven by playwright-core for tests/web.rs: one JSON
// command per stdin line, one JSON answer per stdout line. Uses Debian's
// /usr/bin/chromium (CHROMIUM overrides); never downloads a browser.
//
// Commands (each answers {ok, status?, url?, text?, ...} or {ok:false, error}):
//   {op:"viewport", width, height}
//   {op:"goto", url}                    -> status, url, text (the <main>'s text)
//   {op:"fill", selector, value}
//   {op:"submit", selector}             -> click and wait for the next page
//   {op:"text", selector?}              -> text of selector (default main)
//   {op:"shot", path, fullPage?}        -> screenshot of the page
//   {op:"element_shot", selector, path} -> screenshot of one element
//   {op:"wait_text", url, needle, within_ms} -> reloads until the page has it: ms
"use strict";
const readline = require("readline");
const { chromium } = require("playwright-core");

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  const mainText = async () => {
    const el = await page.$("main");
    return el ? el.innerText() : page.innerText("body");
  };
  const answer = (o) => process.stdout.write(JSON.stringify(o) + "\n");
  answer({ ok: true, ready: true, version: browser.version() });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let c;
    try {
      c = JSON.parse(line);
      if (c.op === "viewport") {
        await page.setViewportSize({ width: c.width, height: c.height || 900 });
        answer({ ok: true });
      } else if (c.op === "goto") {
        const r = await page.goto(c.url, { waitUntil: "load" });
        answer({ ok: true, status: r ? r.status() : 0, url: page.url(), text: await mainText() });
      } else if (c.op === "fill") {
        await page.fill(c.selector, c.value);
        answer({ ok: true });
      } else if (c.op === "check") {
        await page.check(c.selector);
        answer({ ok: true });
      } else if (c.op === "submit") {
        const [r] = await Promise.all([
          page.waitForNavigation({ waitUntil: "load" }),
          page.click(c.selector),
        ]);
        answer({ ok: true, status: r ? r.status() : 0, url: page.url(), text: await mainText() });
      } else if (c.op === "text") {
        answer({ ok: true, text: await page.innerText(c.selector || "main") });
      } else if (c.op === "shot") {
        await page.screenshot({ path: c.path, fullPage: c.fullPage !== false });
        answer({ ok: true });
      } else if (c.op === "element_shot") {
        await page.locator(c.selector).screenshot({ path: c.path });
        answer({ ok: true });
      } else if (c.op === "wait_text") {
        const start = Date.now();
        let text = "";
        for (;;) {
          await page.goto(c.url, { waitUntil: "load" });
          text = await mainText();
          if (text.includes(c.needle)) break;
          if (Date.now() - start > c.within_ms) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        answer({ ok: text.includes(c.needle), ms: Date.now() - start, text });
      } else {
        answer({ ok: false, error: "unknown op " + c.op });
      }
    } catch (e) {
      answer({ ok: false, error: String(e && e.stack ? e.stack : e) });
    }
  }
  await browser.close();
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e) }) + "\n");
  process.exit(1);
});
