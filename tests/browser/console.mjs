// Drives the admin console in headless Chromium, as an operator would: log in, find an
// identity, open it, open the failed jobs, retry one, look at the health page. Run by
// tests/admin_console.rs, which starts the node and checks through the admin API what the
// clicks did. A screenshot of each page goes to the directory given (kept by CI under target/).
//
// Usage: node console.mjs <base url> <admin token> <search term> <job id> <screenshot dir>
// Prints one JSON object of what the pages showed; exits non-zero on any failed step.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, token, search, jobId, shots] = process.argv.slice(2);
if (!shots) {
    console.error('usage: node console.mjs <base url> <admin token> <search term> <job id> <screenshot dir>');
    process.exit(2);
}
mkdirSync(shots, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'dm3-console-chromium-'));

// A fresh profile each run: playwright passes it to Chromium as --user-data-dir.
const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
});
const seen = {};
try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    page.setDefaultTimeout(15000);
    const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

    // Without a session the console sends the browser to its login form.
    await page.goto(`${base}/admin/ui/identities`);
    seen.unauthenticatedUrl = new URL(page.url()).pathname;
    await shot('1-login');

    // A wrong token is refused, and the form says so.
    await page.fill('input[name=token]', 'not-the-admin-token');
    await page.click('button[type=submit]');
    seen.wrongTokenAlert = await page.textContent('[role=alert]');

    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
    await page.waitForURL('**/admin/ui/identities');
    seen.afterLoginTitle = await page.textContent('h1');
    await shot('2-identities');

    await page.fill('input[name=q]', search);
    await page.click('form[action="/admin/ui/identities"][method=get] button');
    await page.waitForURL(/q=/);
    const links = page.locator('table a');
    seen.searchResults = await links.allTextContents();
    await shot('3-search');
    await links.first().click();
    await page.waitForURL(/\/admin\/ui\/identities\/[^?]+$/);
    seen.identityTitle = await page.textContent('h1');
    seen.identityText = await page.textContent('main');
    await shot('4-identity');

    await page.click('header a[href="/admin/ui/jobs"]');
    await page.selectOption('select[name=state]', 'failed');
    await page.click('form[action="/admin/ui/jobs"] button');
    await page.waitForURL(/state=failed/);
    const row = page.locator(`#job-${jobId}`);
    seen.failedRow = await row.textContent();
    await shot('5-jobs-failed');
    await row.locator('button', { hasText: 'Retry' }).click();
    await page.waitForURL(/done=retried/);
    seen.notice = await page.textContent('[role=status]');
    await shot('6-jobs-retried');

    await page.click('header a[href="/admin/ui/health"]');
    seen.healthText = await page.textContent('main');
    await shot('7-health');

    // Logging out ends the session in this browser: the console asks for the token again.
    await page.click('header button');
    await page.goto(`${base}/admin/ui/jobs`);
    seen.afterLogoutUrl = new URL(page.url()).pathname;
} finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(seen));
