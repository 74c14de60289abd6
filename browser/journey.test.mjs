// Browser journeys in Debian's Chromium. Needs STILLWATER_URL pointing at a
// running demo clinic (`stillwater demo`); .ci/run starts one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const BASE = process.env.STILLWATER_URL ?? "http://127.0.0.1:8080";
const PASSWORD = "stillwater-demo";
const SHOTS = new URL("./screenshots/", import.meta.url).pathname;
mkdirSync(SHOTS, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
});
after(async () => { await browser?.close(); });

async function signIn(username) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  // A form answered 422 with its errors is expected; anything else is a fault.
  page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("status of 422")) errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => { if (r.status() === 404) errors.push(`404 ${r.url()}`); });
  await page.goto(`${BASE}/login`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${BASE}/`);
  return { context, page, errors };
}

const shot = (page, name) => page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });

test("front desk registers a patient, finds them and opens the chart; the other clinic gets 404", async () => {
  const { context, page, errors } = await signIn("dana.frontdesk");
  await shot(page, "01-today");
  assert.ok(await page.getByRole("heading", { name: "Stillwater Glendale" }).isVisible());

  await page.getByRole("link", { name: "Patients" }).click();
  await page.getByRole("link", { name: "Register a patient" }).click();
  // Submitting an empty form shows every problem next to its field.
  await page.getByRole("button", { name: "Register patient" }).click();
  assert.ok(await page.getByText("Given name is required").isVisible());
  assert.ok(await page.getByText("Date of birth is required").isVisible());
  await shot(page, "02-register-errors");

  const family = `Quill${Date.now() % 100000}`;
  await page.getByLabel("Given name").fill("Harriet");
  await page.getByLabel("Family name").fill(family);
  await page.getByLabel("Date of birth").fill("1984-03-09");
  await page.locator("#f-phone").fill("(602) 555-0177");
  await page.getByLabel("Escort name").fill("Sam " + family);
  await page.getByRole("button", { name: "Register patient" }).click();
  await page.waitForURL(/\/patients\/[0-9a-f-]{36}$/);
  const chartUrl = page.url();
  assert.ok(await page.getByRole("heading", { name: `${family}, Harriet` }).isVisible());
  await shot(page, "03-chart");

  // Find by search, typing as a person would (htmx live results).
  await page.getByRole("link", { name: "Patients" }).click();
  await page.getByLabel("Find a patient").pressSequentially(family.toLowerCase(), { delay: 20 });
  const link = page.getByRole("link", { name: `${family}, Harriet` });
  await link.waitFor();
  await shot(page, "04-search");
  await link.click();
  await page.waitForURL(chartUrl);
  assert.deepEqual(errors, [], "no script or CSP errors in the console");
  await context.close();

  // A front-desk user of the Denver clinic cannot see a Glendale chart.
  const other = await signIn("devon.frontdesk");
  const resp = await other.page.goto(chartUrl);
  assert.equal(resp.status(), 404);
  assert.ok(await other.page.getByRole("heading", { name: "Not found" }).isVisible());
  await shot(other.page, "05-other-clinic-404");
  await other.context.close();
});

test("keyboard only: skip link, sign in and reach patient search", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${BASE}/login`);
  await page.waitForFunction(() => document.activeElement?.id === "username");
  await page.keyboard.type("nina.nurse");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "password");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${BASE}/`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
  await page.goto(`${BASE}/patients`);
  assert.equal(await page.evaluate(() => document.activeElement?.id), "q");
  await context.close();
});

test("admin and auditor pages render", async () => {
  const admin = await signIn("ada.admin");
  await admin.page.getByRole("link", { name: "Clinics" }).click();
  await admin.page.getByRole("link", { name: "Stillwater Glendale" }).click();
  await shot(admin.page, "06-clinic-settings");
  await admin.page.getByRole("link", { name: "Schedule settings: chairs, rooms, staff hours, ratios" }).click();
  assert.ok(await admin.page.getByRole("heading", { name: "Working hours" }).isVisible());
  await shot(admin.page, "06b-schedule-settings");
  await admin.page.getByRole("link", { name: "Staff", exact: true }).click();
  await shot(admin.page, "07-staff");
  await admin.context.close();
  const auditor = await signIn("audrey.auditor");
  await auditor.page.getByRole("link", { name: "Audit log" }).click();
  assert.ok(await auditor.page.getByRole("cell", { name: "patient.read" }).first().isVisible());
  await shot(auditor.page, "08-audit");
  await auditor.context.close();
});

test("front desk books a six-infusion induction with integration sessions and sees it on the day board", async () => {
  const { context, page, errors } = await signIn("dana.frontdesk");
  await page.getByRole("link", { name: "Patients" }).click();
  await page.getByLabel("Find a patient").pressSequentially("whitaker", { delay: 20 });
  const link = page.getByRole("link", { name: /^Whitaker, / });
  await link.waitFor();
  await link.click();
  await page.getByRole("link", { name: "Book a series" }).click();
  // Start the course a week from today so the whole series lies ahead.
  const start = new Date(Date.now() + 7 * 86400e3).toISOString().slice(0, 10);
  await page.getByLabel("Course").selectOption("induction");
  await page.getByLabel("Dosing visit").selectOption("iv_infusion");
  await page.getByLabel("First dose on or after").fill(start);
  await page.getByRole("button", { name: "Find a series" }).click();
  const rows = page.locator("table.list tbody tr");
  await rows.first().waitFor();
  assert.equal(await rows.count(), 6, "six doses proposed");
  await shot(page, "09-series-proposal");
  const firstDose = (await rows.first().locator("td").nth(1).textContent()).trim();
  await page.getByRole("button", { name: "Book all 12 visits" }).click();
  // Booked: the day board of the first dose, with the patient's infusion on it.
  await page.waitForURL(/\/schedule\/[0-9a-f-]{36}\/day\?date=/);
  const board = page.locator("svg.board");
  await board.waitFor();
  const visit = page.getByRole("row").filter({ hasText: "Whitaker" }).filter({ hasText: "IV infusion" });
  assert.equal(await visit.count(), 1, "the first infusion is on the day board");
  assert.ok((await visit.textContent()).includes("dose 1"));
  assert.ok(await board.locator("rect.ph-dosing").count() >= 1, "dosing phases are drawn");
  await shot(page, "10-day-board");
  // The visit page shows its phases; the chart lists all twelve visits.
  await visit.getByRole("link").first().click();
  assert.ok(await page.getByRole("cell", { name: "Dosing" }).isVisible());
  await shot(page, "11-visit");
  await page.getByRole("link", { name: /Whitaker/ }).first().click();
  const booked = page.locator("section.card table.list tbody tr").filter({ hasText: "Booked" });
  assert.ok(await booked.count() >= 12, `twelve visits on the chart, saw ${await booked.count()} (first dose ${firstDose})`);
  await shot(page, "12-chart-visits");
  assert.deepEqual(errors, [], "no script or CSP errors in the console");
  await context.close();
});

test("a nurse sees the week of a chair and the printable day sheet", async () => {
  const { context, page, errors } = await signIn("nina.nurse");
  await page.getByRole("link", { name: "Schedule" }).click();
  await page.getByLabel("Chair or room", { exact: true }).selectOption({ label: "Chair 1" });
  await page.locator("form:has(#wk-res)").getByRole("button", { name: "Show week" }).click();
  await page.locator("svg.board").waitFor();
  await shot(page, "13-chair-week");
  await page.getByRole("link", { name: "Day board" }).click();
  await page.getByRole("link", { name: "Printable day sheet" }).click();
  assert.ok(await page.getByRole("heading", { name: /Stillwater Glendale/ }).isVisible());
  await shot(page, "14-day-sheet");
  assert.deepEqual(errors, [], "no script or CSP errors in the console");
  await context.close();
});
