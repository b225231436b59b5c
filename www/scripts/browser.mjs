// Launch the system Chromium (never a downloaded one) with WebGPU on SwiftShader, headless,
// through playwright-core. Shared by the demo, the Playwright tests, the eval and the benchmarks.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.MNEMO_CHROMIUM || '/usr/bin/chromium';

/** The flags of webdriver.json: headless, no network chatter, WebGPU on SwiftShader. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless=new',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
  '--use-webgpu-adapter=swiftshader',
];

/** A fresh, empty profile directory. */
export function freshProfile(prefix = 'mnemo-profile-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * A persistent browser context on `userDataDir` (a profile that survives restarts, for
 * persistence tests) or a fresh one. Returns the Playwright BrowserContext.
 */
export async function launch({ userDataDir = freshProfile(), args = [] } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run \`make setup\` (installs Debian's chromium)`);
  }
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
  });
}

/** Chromium's version string, e.g. "Chromium 156.0.8078.108". */
export function chromiumVersion() {
  try {
    return execFileSync(CHROMIUM, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}
