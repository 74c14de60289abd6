import { chromium } from "playwright-core";
const [,, user, path, out, w] = process.argv;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless","--no-sandbox","--disable-gpu"] });
const ctx = await browser.newContext({ viewport: { width: Number(w ?? 1280), height: 900 } });
const page = await ctx.newPage();
if (user !== "-") {
  await page.goto("http://127.0.0.1:18080/login");
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill("stillwater-demo");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL("http://127.0.0.1:18080/");
}
const r = await page.goto("http://127.0.0.1:18080" + path);
console.log(r.status());
await page.screenshot({ path: out, fullPage: true });
await browser.close();
