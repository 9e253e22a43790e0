// Headless Debian Chromium driven by playwright-core, for tests that look at a page as a person would (the
// pipeline report). scripts/setup-system.sh installs /usr/bin/chromium; playwright never downloads a browser here.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Why browser tests must be skipped here (no Chromium outside CI), or undefined when they can run. In CI it throws. */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const why = `${CHROMIUM} is missing (run scripts/setup-system.sh as root)`;
  if (process.env.CI) throw new Error(`CI must run the browser tests: ${why}`);
  return why;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
