// The notebook (index.html) driven through its UI in headless Chromium: type messages, reload,
// type a question, see the right memory in the recall panel; saves a screenshot under target/.
import fs from 'node:fs';
import { test, run, assert, startServer, launch } from './harness.mjs';

test('notebook: type, reload, ask, see the right memory', async () => {
  const { server, url } = await startServer();
  const ctx = await launch();
  try {
    const page = await ctx.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
    const store = `demo-test-${Date.now()}`;
    await page.goto(`${url}/index.html?store=${store}`);
    await page.waitForFunction(() => window.notebook?.ready === true, null, { timeout: 60000 });
    const typed = [
      'My neighbour Lena lends me her ladder every spring.',
      'The car insurance renews on the 3rd of June, policy AX-5521.',
      'I started learning Portuguese with an app called Falar.',
      'Dinner with Joao and Bea on Saturday at the Cantinho restaurant.',
    ];
    for (const t of typed) {
      await page.fill('#message', t);
      await page.press('#message', 'Enter');
      await page.waitForFunction((t) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === t), t, { timeout: 10000 });
    }
    await page.reload();
    await page.waitForFunction(() => window.notebook?.ready === true, null, { timeout: 60000 });
    const listed = await page.$$eval('#messages .text', (els) => els.map((e) => e.textContent));
    assert(typed.every((t) => listed.includes(t)), `messages after reload: ${JSON.stringify(listed)}`);
    await page.type('#message', 'when does my car insurance renew?');
    await page.waitForFunction(() => document.querySelectorAll('#hits .hit').length > 0, null, { timeout: 10000 });
    const first = await page.$eval('#hits .hit .text', (e) => e.textContent);
    assert(first.includes('car insurance renews on the 3rd of June'), `first recalled: ${first}`);
    const parts = await page.$eval('#hits .hit .parts', (e) => e.textContent);
    assert(/vector [\d.]+ · lexical [\d.]+ · recency [\d.]+ · importance [\d.]+/.test(parts), `parts shown: ${parts}`);
    fs.mkdirSync('../target', { recursive: true });
    await page.screenshot({ path: '../target/demo-test.png', fullPage: true });
    console.log('  screenshot: target/demo-test.png');
    await page.evaluate(() => window.notebook.reset());
  } finally {
    await ctx.close();
    server.close();
  }
});

await run('demo.test.mjs');
