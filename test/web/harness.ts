// The manager in a real browser against a real daemon: a live system (namespaces, test/kernel/
// system.ts), an in-process Daemon serving HTTP on 127.0.0.1:<free port>, and Debian's chromium
// driven by playwright-core. Every page opened here fails its test on a console error or an
// uncaught exception (a CSP refusal included). Screenshots go to test-results/web/.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { kernelUnavailable } from '../kernel/ns.js';
import { withLiveSystem, type LiveSystem } from '../kernel/system.js';
import { Daemon } from '../../src/daemon/server.js';
import { readHttpToken, WEB_ROOT } from '../../src/daemon/http.js';
import { NO_ICMP_RATELIMIT, runtimeFor } from '../../src/engine/wiring.js';

export const CHROMIUM = process.env['QNET_CHROMIUM'] ?? '/usr/bin/chromium';
export const SCREENSHOTS = join(process.cwd(), 'test-results', 'web');

/** Why browser tests cannot run here (said loudly as the skip reason), or null. */
export function browserUnavailable(): string | null {
  const k = kernelUnavailable();
  if (k) return k;
  if (!existsSync(CHROMIUM)) return `no browser at ${CHROMIUM} (apt-get install chromium; scripts/quickstart test installs it)`;
  if (!existsSync(join(WEB_ROOT, 'app.js'))) return `the manager is not built (no app.js in ${WEB_ROOT}; npm run build)`;
  return null;
}

/** Chromium as the machine's notes say it runs here: headless, no sandbox as root, no background network. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    timeout: 30_000,
  });
}

/**
 * Chromium logs every 4xx answer as a console error ("Failed to load resource"). An op's 4xx is the
 * daemon refusing a request with its diagnostics, which the page shows (tests check it is shown); it
 * is not a page error. Anything else (5xx, a CSP refusal, an exception) still fails the test.
 */
function isOpRefusal(text: string, url: string): boolean {
  return /^Failed to load resource: the server responded with a status of 4\d\d\b/.test(text) && /^https?:\/\/[^/]+\/v1\/ops\/[a-z.]+$/.test(url);
}

export interface OpenOptions {
  /** #/… after the token is taken; default the qubes page. */
  path?: string;
  viewport?: { width: number; height: number };
  colorScheme?: 'light' | 'dark';
}

export class Manager {
  readonly errors: string[] = [];
  private contexts: BrowserContext[] = [];
  constructor(
    readonly s: LiveSystem,
    readonly daemon: Daemon,
    readonly browser: Browser,
    readonly base: string,
    readonly tokens: { editor: string; viewer: string },
  ) {}

  /** A fresh browser context (its own sessionStorage) on the manager, logged in as `role`. */
  async open(role: 'editor' | 'viewer', o: OpenOptions = {}): Promise<Page> {
    const ctx = await this.browser.newContext({ viewport: o.viewport ?? { width: 1280, height: 800 }, colorScheme: o.colorScheme ?? 'light' });
    this.contexts.push(ctx);
    const page = await ctx.newPage();
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (e) => this.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !isOpRefusal(m.text(), m.location().url)) this.errors.push(`console: ${m.text()}`);
    });
    await page.goto(`${this.base}/#token=${this.tokens[role]}`);
    await page.getByTestId('role').waitFor();
    if (o.path) await page.evaluate((p) => (location.hash = p), o.path);
    return page;
  }

  /** Call an op as a client of the API would (for setup and for checking refusals). */
  async api(role: 'editor' | 'viewer', op: string, input: object = {}): Promise<{ status: number; body: { value?: unknown; warnings?: unknown[]; diagnostics?: { code: string; message: string }[] } }> {
    const r = await fetch(`${this.base}/v1/ops/${op}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.tokens[role]}`, 'content-type': 'application/json' },
      body: JSON.stringify(input),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: r.status, body: (await r.json()) as never };
  }

  async screenshot(page: Page, name: string): Promise<string> {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const path = join(SCREENSHOTS, `${name}.png`);
    await page.screenshot({ path, fullPage: true });
    return path;
  }

  async close(): Promise<void> {
    for (const c of this.contexts.splice(0)) await c.close().catch(() => {});
  }
}

/**
 * A live system with `setup` run through the CLI before the daemon starts (e.g. `init`, `start
 * work`), a daemon serving HTTP, and a browser; all stopped and removed afterwards, on failure too.
 * Throws at the end if any page logged an error.
 */
export async function withManager(tag: string, setup: string[], fn: (m: Manager) => Promise<void>): Promise<void> {
  await withLiveSystem(tag, async (s) => {
    for (const cmd of setup) await s.ok(cmd);
    const daemon = new Daemon({ stateDir: s.dir, runtime: await runtimeFor(s.dir, s.env), sysctls: NO_ICMP_RATELIMIT, http: { host: '127.0.0.1', port: 0, keepaliveMs: 1000 } });
    await daemon.start();
    let browser: Browser | undefined;
    let m: Manager | undefined;
    try {
      browser = await launchBrowser();
      const tokens = { editor: (await readHttpToken(s.dir, 'editor'))!, viewer: (await readHttpToken(s.dir, 'viewer'))! };
      m = new Manager(s, daemon, browser, `http://127.0.0.1:${daemon.httpAddress!.port}`, tokens);
      await fn(m);
      if (m.errors.length) throw new Error(`the page logged errors:\n${m.errors.join('\n')}`);
    } finally {
      await m?.close();
      await browser?.close().catch(() => {});
      await daemon.stop();
    }
  });
}
